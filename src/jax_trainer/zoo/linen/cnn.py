"""linen CNN; module names ``conv{i}``, ``bn{i}``, ``head`` match the nnx version."""

import flax.linen as nn
import jax
import jax.numpy as jnp
from compoconf import register

from jax_trainer.zoo.base import BaseModelLinen
from jax_trainer.zoo.common import BIAS_INIT, BN_EPSILON, BN_MOMENTUM, KERNEL_INIT, pool_after_block
from jax_trainer.zoo.configs import CNNClassifierConfig


@register
class CNNClassifier(nn.Module, BaseModelLinen):
    """Input (B, H, W) or (B, H, W, C); logits of shape (B, num_classes)."""

    config: CNNClassifierConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        cfg = self.config
        if x.ndim == 3:
            x = x[..., None]
        for i, ch in enumerate(cfg.channels, start=1):
            x = nn.Conv(
                ch, (3, 3), padding="SAME", use_bias=not cfg.batch_norm, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT,
                name=f"conv{i}",
            )(x)
            if cfg.batch_norm:
                x = nn.BatchNorm(
                    use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"bn{i}"
                )(x)
            x = jax.nn.relu(x)
            if pool_after_block(x.shape[1], x.shape[2]):
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(cfg.dropout, deterministic=not train)(x)
        return nn.Dense(cfg.num_classes, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, name="head")(x)
