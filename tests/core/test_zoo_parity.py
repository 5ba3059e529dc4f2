"""Cross-backend (imports flax): one config resolves to both backends, paths match, and with the
same weights linen and nnx compute the same outputs, batch stats and gradients."""

import subprocess
import sys

import compoconf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx, traverse_util

import jax_trainer.zoo as zoo
from jax_trainer.backends import parse_model_config
from jax_trainer.config_errors import ConfigError
from jax_trainer.zoo import BaseModelLinen, BaseModelNNX, CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig
from jax_trainer.zoo.convert import linen_to_nnx_state, nnx_to_linen_variables


def _linen_paths(tree):
    return sorted("/".join(k) for k in traverse_util.flatten_dict(tree))


def _nnx_paths(model, var_type):
    return sorted("/".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model, var_type)))


def _pair(config, x):
    linen_model = config.instantiate(BaseModelLinen)
    variables = linen_model.init(jax.random.key(0), x)
    nnx_model = config.instantiate(BaseModelNNX, rngs=nnx.Rngs(123), exmp_input=x)
    return linen_model, variables, nnx_model


def test_one_model_block_resolves_to_both_backends():
    block = {"class_name": "MLPClassifier", "hidden_dims": [32], "num_classes": 10}
    configs = {mode: parse_model_config(mode, dict(block)) for mode in ("linen", "nnx")}
    assert configs["linen"] == configs["nnx"] == MLPClassifierConfig(hidden_dims=[32], num_classes=10)
    cfg = configs["nnx"]
    assert type(cfg.instantiate(BaseModelLinen)) is zoo.linen.MLPClassifier
    assert type(cfg.instantiate(BaseModelNNX, rngs=nnx.Rngs(0), exmp_input=jnp.ones((1, 4)))) is zoo.nnx.MLPClassifier
    for interface in (BaseModelLinen, BaseModelNNX):
        assert {"MLPClassifier", "MLPRegressor", "CNNClassifier"} <= set(compoconf.registered(interface))
    assert compoconf.dump_config(cfg)["class_name"] == "MLPClassifier"


def test_unknown_class_name_error_lists_registered_models():
    with pytest.raises(ConfigError) as info:
        parse_model_config("nnx", {"class_name": "NoSuchModel"})
    assert "NoSuchModel" in str(info.value) and "CNNClassifier" in str(info.value)
    assert info.value.path == "model.class_name"


def test_registering_both_backends_under_one_name_logs_no_warning():
    code = (
        "import logging; logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s %(message)s');"
        "import jax_trainer.zoo"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [line for line in result.stderr.splitlines() if line.startswith("compoconf")] == []


CASES = {
    "mlp": (MLPClassifierConfig(hidden_dims=[16, 8], num_classes=5, dropout=0.0, activation="gelu"), (6, 8, 8)),
    "regressor": (MLPRegressorConfig(hidden_dims=[8], dropout=0.0), (6, 10)),
    "cnn": (CNNClassifierConfig(channels=[4, 8], num_classes=10, dropout=0.0), (6, 8, 8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_after_weight_copy(case):
    config, shape = CASES[case]
    x = jax.random.normal(jax.random.key(1), shape) * 2 + 0.5
    linen_model, variables, nnx_model = _pair(config, x)
    assert _linen_paths(variables["params"]) == _nnx_paths(nnx_model, nnx.Param)
    assert _linen_paths(variables.get("batch_stats", {})) == _nnx_paths(nnx_model, nnx.BatchStat)

    linen_to_nnx_state(variables, nnx_model)
    nnx_model.eval()
    np.testing.assert_allclose(nnx_model(x), linen_model.apply(variables, x, train=False), atol=1e-5, rtol=1e-5)

    y_linen, updates = linen_model.apply(variables, x, train=True, mutable=["batch_stats"])
    nnx_model.train()
    np.testing.assert_allclose(nnx_model(x), y_linen, atol=1e-5, rtol=1e-5)
    back = nnx_to_linen_variables(nnx_model)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), back["params"], variables["params"])
    if "batch_stats" in updates:
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), back["batch_stats"], updates["batch_stats"])


def test_gradients_match_in_train_mode():
    config, shape = CASES["cnn"]
    x = jax.random.normal(jax.random.key(1), shape)
    linen_model, variables, nnx_model = _pair(config, x)
    linen_to_nnx_state(variables, nnx_model)
    nnx_model.train()

    def linen_loss(params):
        y, _ = linen_model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(y**2)

    linen_grads = jax.grad(linen_loss)(variables["params"])
    nnx_grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(nnx_model)
    flat_nnx = {"/".join(map(str, p)): v[...] for p, v in nnx.to_flat_state(nnx_grads)}
    flat_linen = {"/".join(k): v for k, v in traverse_util.flatten_dict(linen_grads).items()}
    assert flat_nnx.keys() == flat_linen.keys()
    for path, grad in flat_linen.items():
        np.testing.assert_allclose(flat_nnx[path], grad, atol=1e-5, err_msg=path)


def test_conversion_errors_name_the_path():
    x = jnp.ones((2, 8, 8))
    _, variables, _ = _pair(MLPClassifierConfig(hidden_dims=[8, 8]), x)
    target = MLPClassifierConfig(hidden_dims=[8]).instantiate(BaseModelNNX, rngs=nnx.Rngs(0), exmp_input=x)
    with pytest.raises(KeyError, match="l2/bias"):
        linen_to_nnx_state(variables, target)
    wider = MLPClassifierConfig(hidden_dims=[9, 8]).instantiate(BaseModelNNX, rngs=nnx.Rngs(0), exmp_input=x)
    with pytest.raises(ValueError, match=r"params/l1/bias.*\(8,\).*\(9,\)"):
        linen_to_nnx_state(variables, wider)
    _, cnn_vars, cnn_nnx = _pair(CNNClassifierConfig(channels=[2]), x)
    with pytest.raises(KeyError, match="batch_stats.*bn1/mean"):
        linen_to_nnx_state({"params": cnn_vars["params"]}, cnn_nnx)
