"""A hand-written nnx port of the zoo CNN whose attribute names differ from the linen module's
(``features_1`` for ``conv1``, ``norm_1`` for ``bn1``, ``classifier`` for ``head``): the case that needs
a rename-rule file (rules.yaml) to convert a linen checkpoint. As in the zoo CNN, the convolutions have no bias
(BatchNorm's shift follows each)."""

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
from compoconf import ConfigInterface, register
from flax import nnx

from jax_trainer.zoo.base import BaseModelNNX


@dataclass
class RenamedCNNConfig(ConfigInterface):
    channels: list[int] = field(default_factory=lambda: [8, 16])
    num_classes: int = 10
    dropout: float = 0.1

    def __hash__(self) -> int:  # part of the nnx graphdef, hashed by jax
        return hash(repr(self))


@register
class RenamedCNN(nnx.Module, BaseModelNNX):
    config: RenamedCNNConfig

    def __init__(self, config: RenamedCNNConfig, *, rngs: nnx.Rngs, exmp_input):
        self.config = config
        features = exmp_input.shape[3] if len(exmp_input.shape) == 4 else 1
        init = jax.nn.initializers.lecun_normal()
        for i, channels in enumerate(config.channels, start=1):
            conv = nnx.Conv(features, channels, (3, 3), padding="SAME", use_bias=False, kernel_init=init, rngs=rngs)
            setattr(self, f"features_{i}", conv)
            setattr(self, f"norm_{i}", nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, rngs=rngs))
            features = channels
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.classifier = nnx.Linear(features, config.num_classes, kernel_init=init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None] if x.ndim == 3 else x
        for i in range(1, len(self.config.channels) + 1):
            x = jax.nn.relu(getattr(self, f"norm_{i}")(getattr(self, f"features_{i}")(x)))
            if min(x.shape[1], x.shape[2]) > 2:
                x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        return self.classifier(self.dropout(jnp.mean(x, axis=(1, 2))))
