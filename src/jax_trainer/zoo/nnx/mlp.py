"""nnx MLPs; attributes ``l1``, ..., ``head`` give the same parameter paths as linen."""

import math

import jax
from compoconf import register
from flax import nnx

from jax_trainer.zoo.base import BaseModelNNX
from jax_trainer.zoo.common import ACTIVATIONS, BIAS_INIT, KERNEL_INIT
from jax_trainer.zoo.configs import MLPClassifierConfig, MLPRegressorConfig


class _MLP(nnx.Module):
    """Hidden stack shared by the classifier and the regressor; layers are plain attributes
    (not an ``nnx.List``) so their paths read ``l1/kernel`` like linen's named submodules."""

    def __init__(self, config, out_features: int, exmp_input, rngs: nnx.Rngs):
        self.config = config
        self.num_hidden = len(config.hidden_dims)
        features = math.prod(exmp_input.shape[1:])
        for i, width in enumerate(config.hidden_dims, start=1):
            setattr(self, f"l{i}", _linear(features, width, rngs))
            features = width
        self.dropout = nnx.Dropout(config.dropout, rngs=rngs)
        self.head = _linear(features, out_features, rngs)

    def _features(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        act = ACTIVATIONS[self.config.activation]
        for i in range(1, self.num_hidden + 1):
            x = self.dropout(act(getattr(self, f"l{i}")(x)))
        return x


def _linear(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(in_features, out_features, kernel_init=KERNEL_INIT, bias_init=BIAS_INIT, rngs=rngs)


@register
class MLPClassifier(_MLP, BaseModelNNX):
    """Logits of shape (B, num_classes)."""

    config: MLPClassifierConfig

    def __init__(self, config: MLPClassifierConfig, *, rngs: nnx.Rngs, exmp_input):
        super().__init__(config, config.num_classes, exmp_input, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.head(self._features(x))


@register
class MLPRegressor(_MLP, BaseModelNNX):
    """Predictions of shape (B,) for output_dim == 1, else (B, output_dim)."""

    config: MLPRegressorConfig

    def __init__(self, config: MLPRegressorConfig, *, rngs: nnx.Rngs, exmp_input):
        super().__init__(config, config.output_dim, exmp_input, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.head(self._features(x))
        return y[:, 0] if self.config.output_dim == 1 else y
