"""WeightDecay on a linen MLP: the same path strings and regexes as the nnx test select the same parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_trainer.optimizer import (
    AdamWConfig,
    SGDConfig,
    WeightDecayConfig,
    build_optimizer,
    param_path,
    param_paths,
)

LR, WD = 0.1, 0.5
# (weight decay config, parameter paths expected to be decayed); the nnx test uses the same cases.
CASES = [
    (WeightDecayConfig(value=WD), {"l1/kernel", "l2/kernel"}),
    (WeightDecayConfig(value=WD, parameter_regex_include=".*kernel.*", parameter_regex_exclude="l2/.*"), {"l1/kernel"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude="l1/.*"), {"l2/kernel", "l2/bias"}),
    (WeightDecayConfig(value=WD, mode="blacklist", parameter_regex_exclude=".*bias$"), {"l1/kernel", "l2/kernel"}),
]
ALL_PATHS = {"l1/kernel", "l1/bias", "l2/kernel", "l2/bias"}


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(2, name="l2")(nn.relu(nn.Dense(4, name="l1")(x)))


def init_params():
    params = MLP().init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    # Biases start at zero, where "unchanged" would prove nothing.
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x + 1.0 if param_path(path).endswith("bias") else x, params
    )


def flat(params):
    return {param_path(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def zero_grad_step(config, params):
    tx = build_optimizer(config).tx

    @jax.jit
    def step(params, state):
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        return optax.apply_updates(params, updates)

    return step(params, tx.init(params))


def test_linen_param_paths():
    params = init_params()
    assert set(flat(params)) == ALL_PATHS
    assert param_paths(params)["l1"]["kernel"] == "l1/kernel"


@pytest.mark.parametrize("wd_config,decayed", CASES)
@pytest.mark.parametrize("as_adamw_decay", [False, True])
def test_linen_weight_decay_one_step(wd_config, decayed, as_adamw_decay):
    params = init_params()
    if as_adamw_decay:  # Adam's update is 0 for zero gradients, leaving only the decoupled decay
        config = AdamWConfig(learning_rate=LR, weight_decay=wd_config)
    else:
        config = SGDConfig(learning_rate=LR, transforms={"wd": wd_config})
    before, after = flat(params), flat(zero_grad_step(config, params))
    for path in ALL_PATHS:
        expected = before[path] * (1 - LR * WD) if path in decayed else before[path]
        np.testing.assert_allclose(after[path], expected, rtol=1e-6, err_msg=path)
