"""WeightDecay through nnx.Optimizer: the same path strings and regexes as the linen test select the same parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_trainer.optimizer import (
    AdamWConfig,
    SGDConfig,
    WeightDecayConfig,
    build_optimizer,
    current_learning_rate,
    param_path,
)

LR, WD = 0.1, 0.5
# (weight decay config, parameter paths expected to be decayed); the linen test uses the same cases.
CASES = [
    (WeightDecayConfig(value=WD), {"l1/kernel", "l2/kernel"}),
    (WeightDecayConfig(value=WD, parameter_regex_include=".*kernel.*", parameter_regex_exclude="l2/.*"), {"l1/kernel"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude="l1/.*"), {"l2/kernel", "l2/bias"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude=".*bias$"), {"l1/kernel", "l2/kernel"}),
]
ALL_PATHS = {"l1/kernel", "l1/bias", "l2/kernel", "l2/bias"}


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(3, 4, rngs=rngs)
        self.l2 = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def init_model():
    model = MLP(nnx.Rngs(0))
    # Biases start at zero, where "unchanged" would prove nothing.
    model.l1.bias[...] += 1.0
    model.l2.bias[...] += 1.0
    return model


def flat(model):
    state = nnx.state(model, nnx.Param)
    return {param_path(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def test_nnx_param_paths_match_linen_names():
    model = init_model()
    assert set(flat(model)) == ALL_PATHS
    pure = nnx.as_pure(nnx.state(model, nnx.Param))
    assert {param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(pure)[0]} == ALL_PATHS


@pytest.mark.parametrize("wd_config,decayed", CASES)
@pytest.mark.parametrize("as_adamw_decay", [False, True])
def test_nnx_weight_decay_one_step(wd_config, decayed, as_adamw_decay):
    model = init_model()
    if as_adamw_decay:  # Adam's update is 0 for zero gradients, leaving only the decoupled decay
        config = AdamWConfig(learning_rate=LR, weight_decay=wd_config)
    else:
        config = SGDConfig(learning_rate=LR, transforms={"wd": wd_config})
    optimizer = nnx.Optimizer(model, build_optimizer(config).tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        grads = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
        optimizer.update(model, grads)
        return current_learning_rate(optimizer.opt_state)

    before = flat(model)
    assert float(step(model, optimizer)) == pytest.approx(LR)
    after = flat(model)
    for path in ALL_PATHS:
        expected = before[path] * (1 - LR * WD) if path in decayed else before[path]
        np.testing.assert_allclose(after[path], expected, rtol=1e-6, err_msg=path)


def test_nnx_weight_decay_eager_update():
    model = init_model()
    tx = build_optimizer(SGDConfig(learning_rate=LR, transforms={"wd": CASES[0][0]})).tx
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    before = flat(model)
    optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
    after = flat(model)
    np.testing.assert_allclose(after["l1/kernel"], before["l1/kernel"] * (1 - LR * WD), rtol=1e-6)
    np.testing.assert_allclose(after["l1/bias"], before["l1/bias"])
