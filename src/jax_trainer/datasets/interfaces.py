"""Dataset registry and the config fields every dataset accepts."""

from dataclasses import dataclass
from typing import Any, Optional

from compoconf import ConfigInterface, RegistrableConfigInterface, register_interface

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.value_checks import check_seed


def check_split_size(name: str, size: float) -> None:
    """A split size is a fraction when below 1, else a whole number of examples."""
    if isinstance(size, bool) or size < 0 or (size >= 1 and size != int(size)):
        raise ValueError(f"{name}: must be a fraction in [0, 1) or a whole count >= 1, got {size}")


@dataclass
class DatasetConfig(ConfigInterface):
    """Fields shared by all datasets (names follow the original jax_trainer configs).

    ``global_batch_size`` is the batch over all hosts; ``local_batch_size`` (default: global / number
    of processes) is what one host's loader yields. ``val_size`` is a fraction of the data when below
    1, else a number of examples (one float field, so YAML ``0.1`` and ``5000`` both parse).
    ``split_seed`` fixes the train/val(/test) split and ``seed`` the per-epoch shuffle. ``num_workers`` threads
    prepare host batches ahead of the training loop, up to ``num_workers * prefetch_factor`` (default factor 2)
    at once (0: batches are prepared when asked for); the batches and their order do not depend on them.
    ``pin_memory`` is accepted for compatibility and ignored.
    """

    data_dir: Optional[str] = None
    global_batch_size: int = 128
    local_batch_size: Optional[int] = None
    num_workers: int = 0
    normalize: bool = True
    val_size: float = 0.1
    split_seed: int = 42
    seed: int = 42
    pin_memory: bool = False
    prefetch_factor: Optional[int] = None

    def __post_init__(self):
        if self.global_batch_size <= 0:
            raise ValueError(f"global_batch_size: must be positive, got {self.global_batch_size}")
        if self.local_batch_size is not None and self.local_batch_size <= 0:
            raise ValueError(f"local_batch_size: must be positive, got {self.local_batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers: must be >= 0, got {self.num_workers}")
        if self.prefetch_factor is not None and self.prefetch_factor < 1:
            raise ValueError(f"prefetch_factor: must be >= 1, got {self.prefetch_factor}")
        check_split_size("val_size", self.val_size)
        check_seed("seed", self.seed)
        check_seed("split_seed", self.split_seed)


@dataclass
class DatasetSplits:
    """The loaders a dataset builds; ``val`` and ``test`` are None when the dataset has none, or a dict name ->
    loader when it provides named splits (``{"clean": ..., "noisy": ...}``: metrics ``val/<name>/<metric>``)."""

    train: Any
    val: Any = None
    test: Any = None


@register_interface
class DatasetInterface(RegistrableConfigInterface):
    """A dataset built from its config: ``config.instantiate(DatasetInterface)``."""

    def build(self) -> DatasetSplits:
        """Load the data and return train/val/test loaders."""
        raise NotImplementedError

    def example_batch(self) -> SupervisedBatch:
        """A training batch of the local batch size, used to initialise models."""
        raise NotImplementedError

    def target_scale(self) -> tuple[float, float] | None:
        """``(mean, std)`` the targets were standardised with (served targets are ``(y - mean) / std``), so that
        metrics can be reported in the target's own units; None when targets are served as they are."""
        return None
