"""nnx CNN; attributes ``conv{i}``, ``bn{i}``, ``head`` give the same paths as linen."""

import jax
import jax.numpy as jnp
from compoconf import register
from flax import nnx

from jax_trainer.zoo.base import BaseModelNNX
from jax_trainer.zoo.common import BIAS_INIT, BN_EPSILON, BN_MOMENTUM, KERNEL_INIT, pool_after_block
from jax_trainer.zoo.configs import CNNClassifierConfig


@register
class CNNClassifier(nnx.Module, BaseModelNNX):
    """Input (B, H, W) or (B, H, W, C); logits of shape (B, num_classes)."""

    config: CNNClassifierConfig

    def __init__(self, config: CNNClassifierConfig, *, rngs: nnx.Rngs, exmp_input):
        if len(exmp_input.shape) not in (3, 4):
            raise ValueError(
                f"CNNClassifier expects (B, H, W) or (B, H, W, C) input, got shape {exmp_input.shape}"
            )
        self.config = config
        features = exmp_input.shape[3] if len(exmp_input.shape) == 4 else 1
        for i, ch in enumerate(config.channels, start=1):
            conv = nnx.Conv(
                features, ch, (3, 3), padding="SAME", use_bias=not config.batch_norm, kernel_init=KERNEL_INIT,
                bias_init=BIAS_INIT, rngs=rngs,
            )
            setattr(self, f"conv{i}", conv)
            if config.batch_norm:
                bn = nnx.BatchNorm(ch, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)
                setattr(self, f"bn{i}", bn)
            features = ch
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.head = nnx.Linear(
            features, config.num_classes, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim == 3:
            x = x[..., None]
        for i in range(1, len(self.config.channels) + 1):
            x = getattr(self, f"conv{i}")(x)
            if self.config.batch_norm:
                x = getattr(self, f"bn{i}")(x)
            x = jax.nn.relu(x)
            if pool_after_block(x.shape[1], x.shape[2]):
                x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        x = jnp.mean(x, axis=(1, 2))
        return self.head(self.dropout(x))
