"""Backend-neutral configs of the zoo models (no flax import: the core config parses these)."""

from dataclasses import dataclass, field

from compoconf import ConfigInterface

from jax_trainer.zoo.common import ACTIVATIONS


def _hash_by_repr(self) -> int:
    """Configs live on linen modules and in nnx graphdefs, which jax hashes as static data;
    list fields make the dataclass default unhashable, so hash the (deterministic) repr."""
    return hash(repr(self))


def _check_layers(sizes: list[int], dropout: float, what: str) -> None:
    if any(int(d) <= 0 for d in sizes):
        raise ValueError(f"{what}: must all be positive, got {sizes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")


def _check_mlp(config: "MLPClassifierConfig | MLPRegressorConfig") -> None:
    """The checks the two MLP configs share (each checks its own head size)."""
    _check_layers(config.hidden_dims, config.dropout, "hidden_dims")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown {config.activation!r}; expected one of {sorted(ACTIVATIONS)}")


@dataclass
class MLPClassifierConfig(ConfigInterface):
    """Flatten, hidden Dense layers ``l1..lN`` (activation, dropout), Dense ``head`` to logits."""

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    num_classes: int = 10
    dropout: float = 0.0
    activation: str = "relu"

    __hash__ = _hash_by_repr

    def __post_init__(self):
        _check_mlp(self)
        _check_positive("num_classes", self.num_classes)


@dataclass
class MLPRegressorConfig(ConfigInterface):
    """Same body as the classifier with a linear ``head``; output is (B,) when output_dim == 1."""

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    output_dim: int = 1
    dropout: float = 0.0
    activation: str = "relu"

    __hash__ = _hash_by_repr

    def __post_init__(self):
        _check_mlp(self)
        _check_positive("output_dim", self.output_dim)


@dataclass
class CNNClassifierConfig(ConfigInterface):
    """Blocks ``conv{i}`` 3x3 SAME -> ``bn{i}`` -> relu -> 2x2 avg pool, global mean, dropout, ``head``. With
    ``batch_norm`` the convolutions have no bias: BatchNorm subtracts the mean, so a bias there gets a zero gradient
    (up to rounding, which Adam would turn into steps that follow the device count's reduction order) and BN's own
    shift does its work."""

    channels: list[int] = field(default_factory=lambda: [16, 32])
    num_classes: int = 10
    dropout: float = 0.1
    batch_norm: bool = True

    __hash__ = _hash_by_repr

    def __post_init__(self):
        _check_layers(self.channels, self.dropout, "channels")
        _check_positive("num_classes", self.num_classes)
