"""Your own nnx model: a small CNN for 8x8 digits, registered under BaseModelNNX (see README, "Write a model")."""

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from compoconf import ConfigInterface, register
from flax import nnx

from jax_trainer.zoo.base import BaseModelNNX


@dataclass
class DigitsCNNConfig(ConfigInterface):
    """Two 3x3 conv blocks (``channels``), global mean pooling, dropout, a linear head."""

    channels: list[int] = field(default_factory=lambda: [16, 32])
    num_classes: int = 10
    dropout: float = 0.1

    def __hash__(self) -> int:  # a list field makes the dataclass unhashable; nnx keeps the config as static data
        return hash(repr(self))


@register
class DigitsCNN(nnx.Module, BaseModelNNX):
    """Input (B, H, W) or (B, H, W, C); logits (B, num_classes)."""

    config: DigitsCNNConfig

    def __init__(self, config: DigitsCNNConfig, *, rngs: nnx.Rngs, exmp_input):
        self.config = config
        features = exmp_input.shape[3] if exmp_input.ndim == 4 else 1  # nnx sizes layers eagerly
        self.convs = nnx.List()
        for width in config.channels:
            self.convs.append(nnx.Conv(features, width, (3, 3), padding="SAME", rngs=rngs))
            features = width
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.head = nnx.Linear(features, config.num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None] if x.ndim == 3 else x
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.head(self.dropout(jnp.mean(x, axis=(1, 2))))
