"""Your own linen model: a small CNN with BatchNorm and Dropout for 8x8 digits, registered under BaseModelLinen."""

from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp
from compoconf import ConfigInterface, register

from jax_trainer.zoo.base import BaseModelLinen


@dataclass
class DigitsLinenCNNConfig(ConfigInterface):
    """Conv blocks (``channels``) with BatchNorm, global mean pooling, dropout, a dense head."""

    channels: list[int] = field(default_factory=lambda: [16, 32])
    num_classes: int = 10
    dropout: float = 0.1

    def __hash__(self) -> int:  # linen modules are hashed with their fields: keep the list-holding config hashable
        return hash(repr(self))


@register
class DigitsLinenCNN(nn.Module, BaseModelLinen):
    """``train`` switches Dropout and BatchNorm; the trainer passes the dropout rng and ``mutable=["batch_stats"]``."""

    config: DigitsLinenCNNConfig

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x = x[..., None] if x.ndim == 3 else x
        for width in self.config.channels:
            x = nn.Conv(width, (3, 3), padding="SAME")(x)
            x = nn.BatchNorm(use_running_average=not train)(x)
            x = nn.relu(x)
        x = nn.Dropout(self.config.dropout, deterministic=not train)(jnp.mean(x, axis=(1, 2)))
        return nn.Dense(self.config.num_classes)(x)
