"""linen zoo models: parameter paths, train/eval behaviour of BatchNorm and Dropout (shared tests in
tests/zoo_scenarios.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jax_trainer.zoo import BaseModelLinen, CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig
from jax_trainer.zoo.linen import CNNClassifier, MLPClassifier
from zoo_scenarios import *  # noqa: F401,F403
from zoo_scenarios import init_linen


def _paths(tree):
    return sorted("/".join(k) for k in traverse_util.flatten_dict(tree))


def test_instantiated_classes_and_param_paths():
    model, variables = init_linen(MLPClassifierConfig(hidden_dims=[16, 8], num_classes=5), jnp.ones((2, 4)))
    assert type(model) is MLPClassifier
    assert _paths(variables["params"]) == [
        "head/bias", "head/kernel", "l1/bias", "l1/kernel", "l2/bias", "l2/kernel"
    ]
    assert set(variables) == {"params"}
    cnn, cnn_vars = init_linen(CNNClassifierConfig(channels=[4, 8]), jnp.ones((2, 8, 8)))
    assert type(cnn) is CNNClassifier
    assert _paths(cnn_vars["batch_stats"]) == ["bn1/mean", "bn1/var", "bn2/mean", "bn2/var"]
    assert cnn_vars["params"]["conv2"]["kernel"].shape == (3, 3, 4, 8)


def test_batchnorm_updates_stats_in_train_and_eval_is_deterministic():
    x = jax.random.normal(jax.random.key(1), (8, 8, 8)) * 3 + 1
    model, variables = init_linen(CNNClassifierConfig(channels=[4], dropout=0.5), x)
    _, updates = model.apply(
        variables, x, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]
    )
    old, new = variables["batch_stats"]["bn1"], updates["batch_stats"]["bn1"]
    assert not np.allclose(old["mean"], new["mean"])
    y1 = model.apply(variables, x, train=False)
    y2 = model.apply(variables, x, train=False)
    np.testing.assert_array_equal(y1, y2)


def test_batchnorm_momentum_is_point_nine():
    x = jax.random.normal(jax.random.key(1), (16, 4, 4, 1)) + 5.0
    model, variables = init_linen(CNNClassifierConfig(channels=[2], dropout=0.0), x)
    assert "bias" not in variables["params"]["conv1"]  # BatchNorm's shift replaces it
    conv_out = jax.lax.conv_general_dilated(
        x, variables["params"]["conv1"]["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    expected = 0.1 * conv_out.mean(axis=(0, 1, 2))  # running mean starts at 0
    np.testing.assert_allclose(updates["batch_stats"]["bn1"]["mean"], expected, rtol=1e-4, atol=1e-6)


def test_dropout_only_in_train_mode():
    x = jnp.ones((4, 12))
    model, variables = init_linen(MLPClassifierConfig(hidden_dims=[64], dropout=0.5), x)
    a = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model.apply(variables, x), model.apply(variables, x, train=False))


def test_modules_are_hashable_and_jittable():
    model, variables = init_linen(MLPRegressorConfig(hidden_dims=[8]), jnp.ones((2, 3)))
    assert hash(model) == hash(MLPRegressorConfig(hidden_dims=[8]).instantiate(BaseModelLinen))
    fn = jax.jit(model.apply, static_argnames="train")
    np.testing.assert_allclose(fn(variables, jnp.ones((2, 3)), train=False), model.apply(variables, jnp.ones((2, 3))))
