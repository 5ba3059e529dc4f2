"""Zoo model behaviour both backends must show; tests/linen and tests/nnx import these tests and provide the
``mode`` fixture. Backend-specific checks (parameter collections, train/eval switches) stay in their folders."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jax_trainer.zoo import BaseModelLinen, BaseModelNNX, CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig


def init_linen(config, x):
    """The linen model of ``config`` and its variables, initialised on ``x``."""
    model = config.instantiate(BaseModelLinen)
    return model, model.init(jax.random.key(0), x)


def build_nnx(config, x, seed=0):
    """The nnx model of ``config``, built for inputs shaped like ``x``."""
    return config.instantiate(BaseModelNNX, rngs=nnx.Rngs(seed), exmp_input=x)


def eval_output(mode: str, config, x):
    """A freshly initialised model's output on ``x`` in eval mode."""
    if mode == "linen":
        model, variables = init_linen(config, x)
        return model.apply(variables, x)
    model = build_nnx(config, x)
    model.eval()
    return model(x)


@pytest.mark.parametrize(
    ("config", "x_shape", "y_shape"),
    [
        (MLPClassifierConfig(hidden_dims=[16, 8], num_classes=5), (4, 8, 8), (4, 5)),
        (MLPRegressorConfig(hidden_dims=[8]), (4, 10), (4,)),
        (MLPRegressorConfig(hidden_dims=[8], output_dim=3), (4, 10), (4, 3)),
        (CNNClassifierConfig(channels=[4, 8], num_classes=10), (4, 8, 8), (4, 10)),
        (CNNClassifierConfig(channels=[4], num_classes=3, batch_norm=False), (2, 6, 6, 3), (2, 3)),
    ],
)
def test_output_shapes(mode, config, x_shape, y_shape):
    assert eval_output(mode, config, jnp.ones(x_shape)).shape == y_shape
