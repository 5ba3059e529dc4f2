"""nnx zoo models: parameter paths, train()/eval() behaviour of BatchNorm and Dropout (shared tests in
tests/zoo_scenarios.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_trainer.zoo import CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig
from jax_trainer.zoo.nnx import CNNClassifier, MLPClassifier
from zoo_scenarios import *  # noqa: F401,F403
from zoo_scenarios import build_nnx


def _paths(model, var_type):
    return sorted("/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model, var_type)))


def test_instantiated_classes_and_param_paths():
    model = build_nnx(MLPClassifierConfig(hidden_dims=[16, 8], num_classes=5), jnp.ones((2, 4)))
    assert type(model) is MLPClassifier
    assert _paths(model, nnx.Param) == ["head/bias", "head/kernel", "l1/bias", "l1/kernel", "l2/bias", "l2/kernel"]
    cnn = build_nnx(CNNClassifierConfig(channels=[4, 8]), jnp.ones((2, 8, 8)))
    assert type(cnn) is CNNClassifier
    assert _paths(cnn, nnx.BatchStat) == ["bn1/mean", "bn1/var", "bn2/mean", "bn2/var"]
    assert cnn.conv2.kernel[...].shape == (3, 3, 4, 8)


def test_cnn_rejects_inputs_of_wrong_rank():
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        build_nnx(CNNClassifierConfig(), jnp.ones((2, 8)))


def test_batchnorm_uses_batch_stats_in_train_and_running_averages_in_eval():
    x = jax.random.normal(jax.random.key(1), (8, 8, 8)) * 3 + 1
    model = build_nnx(CNNClassifierConfig(channels=[4], dropout=0.5), x)
    before = np.asarray(model.bn1.mean[...])
    model.eval()
    y1, y2 = model(x), model(x)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(model.bn1.mean[...], before)
    model.train()
    model(x)
    assert not np.allclose(model.bn1.mean[...], before)


def test_batchnorm_momentum_is_point_nine():
    x = jax.random.normal(jax.random.key(1), (16, 4, 4, 1)) + 5.0
    model = build_nnx(CNNClassifierConfig(channels=[2], dropout=0.0), x)
    conv_out = model.conv1(x)
    model.train()
    model(x)
    np.testing.assert_allclose(model.bn1.mean[...], 0.1 * conv_out.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_dropout_only_in_train_mode():
    x = jnp.ones((4, 12))
    model = build_nnx(MLPClassifierConfig(hidden_dims=[64], dropout=0.5), x)
    model.train()
    a, b = model(x), model(x)
    assert not np.allclose(a, b)  # the dropout rng stream advances between calls
    model.eval()
    np.testing.assert_array_equal(model(x), model(x))


def test_graphdef_is_hashable_and_model_jits():
    x = jnp.ones((2, 3))
    model = build_nnx(MLPRegressorConfig(hidden_dims=[8], dropout=0.2), x)
    model.eval()  # train/eval is static data of the graphdef
    graphdef, _ = nnx.split(model)
    other = build_nnx(MLPRegressorConfig(hidden_dims=[8], dropout=0.2), x, seed=1)
    other.eval()
    assert hash(graphdef) == hash(nnx.split(other)[0])

    @jax.jit
    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    np.testing.assert_allclose(apply(nnx.state(model), x), model(x), rtol=1e-6)
