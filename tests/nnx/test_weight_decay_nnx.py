"""WeightDecay through nnx.Optimizer (the shared one-step test is in tests/weight_decay_scenarios.py)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_trainer.optimizer import SGDConfig, build_optimizer, param_path
from weight_decay_scenarios import *  # noqa: F401,F403
from weight_decay_scenarios import ALL_PATHS, CASES, LR, WD, flat, init_nnx_model


def test_nnx_param_paths_match_linen_names():
    model = init_nnx_model()
    assert set(flat(nnx.state(model, nnx.Param))) == ALL_PATHS
    pure = nnx.as_pure(nnx.state(model, nnx.Param))
    assert {param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(pure)[0]} == ALL_PATHS


def test_nnx_weight_decay_eager_update():
    model = init_nnx_model()
    tx = build_optimizer(SGDConfig(learning_rate=LR, transforms={"wd": CASES[0][0]})).tx
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = flat(nnx.state(model, nnx.Param))
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
    after = flat(nnx.state(model, nnx.Param))
    np.testing.assert_allclose(after["l1/kernel"], before["l1/kernel"] * (1 - LR * WD), rtol=1e-6)
    np.testing.assert_allclose(after["l1/bias"], before["l1/bias"])
