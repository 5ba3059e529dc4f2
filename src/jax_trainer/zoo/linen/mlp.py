"""linen MLPs; parameter paths ``l1/kernel``, ..., ``head/kernel`` match the nnx versions."""

import flax.linen as nn
import jax
from compoconf import register

from jax_trainer.zoo.base import BaseModelLinen
from jax_trainer.zoo.common import ACTIVATIONS, BIAS_INIT, KERNEL_INIT
from jax_trainer.zoo.configs import MLPClassifierConfig, MLPRegressorConfig


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, name=name)


def _mlp(x: jax.Array, cfg: MLPClassifierConfig | MLPRegressorConfig, out_features: int, train: bool) -> jax.Array:
    """Flatten, hidden ``l1..lN`` (activation, dropout), Dense ``head``; called inside a compact method,
    which binds the names."""
    x = x.reshape((x.shape[0], -1))
    act = ACTIVATIONS[cfg.activation]
    for i, width in enumerate(cfg.hidden_dims, start=1):
        x = act(_dense(width, f"l{i}")(x))
        x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
    return _dense(out_features, "head")(x)


@register
class MLPClassifier(nn.Module, BaseModelLinen):
    """Logits of shape (B, num_classes)."""

    config: MLPClassifierConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        return _mlp(x, self.config, self.config.num_classes, train)


@register
class MLPRegressor(nn.Module, BaseModelLinen):
    """Predictions of shape (B,) for output_dim == 1, else (B, output_dim)."""

    config: MLPRegressorConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        y = _mlp(x, cfg, cfg.output_dim, train)
        return y[:, 0] if cfg.output_dim == 1 else y
