"""WeightDecay selects parameters by path: a linen and an nnx MLP with the same paths (``l1/kernel``, ...) must
have the same parameters decayed by the same configs. tests/linen and tests/nnx import these tests and provide
the ``mode`` fixture."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
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
# (weight decay config, parameter paths expected to be decayed)
CASES = [
    (WeightDecayConfig(value=WD), {"l1/kernel", "l2/kernel"}),
    (WeightDecayConfig(value=WD, parameter_regex_include=".*kernel.*", parameter_regex_exclude="l2/.*"), {"l1/kernel"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude="l1/.*"), {"l2/kernel", "l2/bias"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude=".*bias$"), {"l1/kernel", "l2/kernel"}),
]
ALL_PATHS = {"l1/kernel", "l1/bias", "l2/kernel", "l2/bias"}


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="l2")(nn.relu(nn.Dense(4, name="l1")(x)))


class NNXMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(3, 4, rngs=rngs)
        self.l2 = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


# Biases start at zero, where "unchanged" would prove nothing: both initialisers move them to one.
def init_linen_params():
    params = LinenMLP().init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x + 1.0 if param_path(path).endswith("bias") else x, params
    )


def init_nnx_model() -> NNXMLP:
    model = NNXMLP(nnx.Rngs(0))
    model.l1.bias[...] += 1.0
    model.l2.bias[...] += 1.0
    return model


def flat(params) -> dict[str, np.ndarray]:
    """Path string -> value of every leaf of a parameter tree (linen params or an nnx ``Param`` state)."""
    return {param_path(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def linen_zero_grad_step(tx):
    """(parameters before, after, learning rate used) for one jitted update with zero gradients."""
    params = init_linen_params()

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        return optax.apply_updates(params, updates), current_learning_rate(state)

    after, lr = step(params, tx.init(params))
    return flat(params), flat(after), lr


def nnx_zero_grad_step(tx):
    """The same through nnx.Optimizer."""
    model = init_nnx_model()
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        optimizer.update(model, jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param)))
        return current_learning_rate(optimizer.opt_state)

    before = flat(nnx.state(model, nnx.Param))
    lr = step(model, optimizer)
    return before, flat(nnx.state(model, nnx.Param)), lr


ZERO_GRAD_STEP = {"linen": linen_zero_grad_step, "nnx": nnx_zero_grad_step}


@pytest.mark.parametrize("wd_config,decayed", CASES)
@pytest.mark.parametrize("as_adamw_decay", [False, True])
def test_weight_decay_one_step(mode, wd_config, decayed, as_adamw_decay):
    if as_adamw_decay:  # Adam's update is 0 for zero gradients, leaving only the decoupled decay
        config = AdamWConfig(learning_rate=LR, weight_decay=wd_config)
    else:
        config = SGDConfig(learning_rate=LR, transforms={"wd": wd_config})
    before, after, lr = ZERO_GRAD_STEP[mode](build_optimizer(config).tx)
    assert float(lr) == pytest.approx(LR)
    for path in ALL_PATHS:
        expected = before[path] * (1 - LR * WD) if path in decayed else before[path]
        np.testing.assert_allclose(after[path], expected, rtol=1e-6, err_msg=path)
