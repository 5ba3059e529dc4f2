"""linen MLPs; parameter paths ``l1/kernel``, ..., ``head/kernel`` match the nnx versions."""

import flax.linen as nn
import jax
from compoconf import register

from jax_trainer.zoo.base import BaseModelLinen
from jax_trainer.zoo.common import ACTIVATIONS, BIAS_INIT, KERNEL_INIT
from jax_trainer.zoo.configs import MLPClassifierConfig, MLPRegressorConfig


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, name=name)


def _hidden(x: jax.Array, hidden_dims: list[int], activation: str, dropout: float, train: bool) -> jax.Array:
    """Flatten and run the hidden stack; must be called inside a compact method to bind names."""
    x = x.reshape((x.shape[0], -1))
    act = ACTIVATIONS[activation]
    for i, width in enumerate(hidden_dims, start=1):
        x = act(_dense(width, f"l{i}")(x))
        x = nn.Dropout(dropout, deterministic=not train)(x)
    return x


@register
class MLPClassifier(nn.Module, BaseModelLinen):
    """Logits of shape (B, num_classes)."""

    config: MLPClassifierConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        x = _hidden(x, cfg.hidden_dims, cfg.activation, cfg.dropout, train)
        return _dense(cfg.num_classes, "head")(x)


@register
class MLPRegressor(nn.Module, BaseModelLinen):
    """Predictions of shape (B,) for output_dim == 1, else (B, output_dim)."""

    config: MLPRegressorConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        x = _hidden(x, cfg.hidden_dims, cfg.activation, cfg.dropout, train)
        y = _dense(cfg.output_dim, "head")(x)
        return y[:, 0] if cfg.output_dim == 1 else y
