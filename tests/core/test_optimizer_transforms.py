"""Gradient transforms: clipping values, before/after ordering, weight-decay selection and decay conflicts."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compoconf import parse_config

from jax_trainer.optimizer import (
    AdamConfig,
    AdamWConfig,
    GradClipNormConfig,
    GradClipValueConfig,
    LambConfig,
    LinearScheduleConfig,
    SGDConfig,
    WeightDecay,
    WeightDecayConfig,
    build_optimizer,
    param_paths,
)


def one_update(config, grads, params, total_steps=None):
    tx = build_optimizer(config, total_steps).tx
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_grad_clip_norm_rescales_to_max_norm():
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    config = SGDConfig(learning_rate=1.0, transforms={"clip": GradClipNormConfig(max_norm=1.0)})
    updates = one_update(config, grads, jax.tree.map(jnp.zeros_like, grads))
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-0.8], rtol=1e-6)
    small = {"a": jnp.array([0.3, 0.0]), "b": jnp.array([0.4])}
    np.testing.assert_allclose(one_update(config, small, small)["b"], [-0.4], rtol=1e-6)


def test_grad_clip_value_clips_elementwise():
    grads = {"w": jnp.array([3.0, -0.5, -4.0, 0.2])}
    config = SGDConfig(learning_rate=1.0, transforms={"clip": GradClipValueConfig(max_delta=1.0)})
    updates = one_update(config, grads, grads)
    np.testing.assert_allclose(updates["w"], [-1.0, 0.5, 1.0, -0.2], rtol=1e-6)


def test_clip_norm_before_and_after_the_optimizer_differ():
    grads = {"w": jnp.array([3.0, 4.0])}
    before = SGDConfig(learning_rate=2.0, transforms={"clip": GradClipNormConfig(max_norm=1.0)})
    after = SGDConfig(learning_rate=2.0, transforms={"clip": GradClipNormConfig(max_norm=1.0, before_optimizer=False)})
    np.testing.assert_allclose(one_update(before, grads, grads)["w"], [-1.2, -1.6], rtol=1e-6)
    np.testing.assert_allclose(one_update(after, grads, grads)["w"], [-0.6, -0.8], rtol=1e-6)


def test_clip_value_before_adam_is_normalized_away_after_adam_is_not():
    grads = {"w": jnp.array([5.0, -3.0])}
    before = AdamConfig(learning_rate=1.0, transforms={"clip": GradClipValueConfig(max_delta=0.01)})
    clip_after = GradClipValueConfig(max_delta=0.01, before_optimizer=False)
    after = AdamConfig(learning_rate=1.0, transforms={"clip": clip_after})
    np.testing.assert_allclose(one_update(before, grads, grads)["w"], [-1.0, 1.0], rtol=1e-4)
    np.testing.assert_allclose(one_update(after, grads, grads)["w"], [-0.01, 0.01], rtol=1e-6)


def test_transforms_chain_in_config_order():
    grads = {"w": jnp.array([3.0, 4.0])}
    clip_value_then_norm = SGDConfig(
        learning_rate=1.0,
        transforms={"value": GradClipValueConfig(max_delta=3.0), "norm": GradClipNormConfig(max_norm=3.0)},
    )
    # value clip: (3, 3), norm 3*sqrt(2) -> rescaled to norm 3
    expected = -np.array([3.0, 3.0]) / np.sqrt(2.0)
    np.testing.assert_allclose(one_update(clip_value_then_norm, grads, grads)["w"], expected, rtol=1e-6)


def test_weight_decay_selection_rules():
    whitelist = WeightDecay(WeightDecayConfig(value=1.0, parameter_regex_exclude="l2/.*"))
    assert whitelist.decays("l1/kernel") and whitelist.decays("blocks/0/weight")
    assert not whitelist.decays("l1/bias") and not whitelist.decays("l2/kernel") and not whitelist.decays("bn/scale")
    original_style = WeightDecay(WeightDecayConfig(value=1.0, parameter_regex_exclude=""))
    assert original_style.decays("l2/kernel") and not original_style.decays("l2/bias")
    everything = WeightDecay(WeightDecayConfig(value=1.0, parameter_regex_include=None))
    assert everything.decays("l1/bias") and everything.decays("bn/scale")
    blacklist = WeightDecay(WeightDecayConfig(value=1.0, mode="blacklist", parameter_regex_exclude=".*(bias|scale)$"))
    assert blacklist.decays("l1/kernel") and blacklist.decays("embed/embedding")
    assert not blacklist.decays("l1/bias") and not blacklist.decays("bn/scale")
    params = {"l1": {"kernel": 1.0, "bias": 1.0}, "l2": {"kernel": 1.0}}
    assert param_paths(params) == {"l1": {"kernel": "l1/kernel", "bias": "l1/bias"}, "l2": {"kernel": "l2/kernel"}}
    assert whitelist.mask(params) == {"l1": {"kernel": True, "bias": False}, "l2": {"kernel": False}}


def test_weight_decay_config_validation():
    with pytest.raises(ValueError, match="parameter_regex_include"):
        WeightDecayConfig(value=0.1, parameter_regex_include="(")
    with pytest.raises(ValueError, match="mode"):
        WeightDecayConfig(value=0.1, mode="greylist")
    with pytest.raises(ValueError, match="value"):
        WeightDecayConfig(value=-0.1)


PARAMS = {"l1": {"kernel": jnp.array([[2.0, -4.0]]), "bias": jnp.array([1.0, 3.0])}}
ZERO_GRADS = jax.tree.map(jnp.zeros_like, PARAMS)


def test_decoupled_decay_follows_the_learning_rate_schedule():
    schedule = LinearScheduleConfig(init_value=0.1, end_value=0.3, transition_steps=2)
    config = SGDConfig(learning_rate=schedule, transforms={"wd": WeightDecayConfig(value=0.5)})
    tx = build_optimizer(config).tx
    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(2):
        updates, state = tx.update(ZERO_GRADS, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["l1"]["kernel"], PARAMS["l1"]["kernel"] * (1 - 0.05) * (1 - 0.1), rtol=1e-6)
    np.testing.assert_allclose(params["l1"]["bias"], PARAMS["l1"]["bias"])


def test_weight_decay_before_adam_is_coupled_after_is_decoupled():
    before = AdamConfig(learning_rate=0.1, transforms={"wd": WeightDecayConfig(value=0.5, before_optimizer=True)})
    after = AdamConfig(learning_rate=0.1, transforms={"wd": WeightDecayConfig(value=0.5)})
    kernel = PARAMS["l1"]["kernel"]
    coupled = one_update(before, ZERO_GRADS, PARAMS)["l1"]["kernel"]
    np.testing.assert_allclose(coupled, -0.1 * jnp.sign(kernel), rtol=1e-5)
    np.testing.assert_allclose(one_update(after, ZERO_GRADS, PARAMS)["l1"]["kernel"], -0.05 * kernel, rtol=1e-6)
    for config in (before, after):
        np.testing.assert_allclose(one_update(config, ZERO_GRADS, PARAMS)["l1"]["bias"], 0.0)


def test_adamw_weight_decay_matches_optax_adamw():
    grads = {"l1": {"kernel": jnp.array([[0.3, -0.1]]), "bias": jnp.array([0.2, 0.5])}}
    selected = AdamWConfig(learning_rate=0.1, weight_decay=WeightDecayConfig(value=0.2))
    reference = optax.adamw(0.1, weight_decay=0.2, mask={"l1": {"kernel": True, "bias": False}})
    expected, _ = reference.update(grads, reference.init(PARAMS), PARAMS)
    np.testing.assert_allclose(one_update(selected, grads, PARAMS)["l1"]["kernel"], expected["l1"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(one_update(selected, grads, PARAMS)["l1"]["bias"], expected["l1"]["bias"], rtol=1e-6)
    every_param = one_update(AdamWConfig(learning_rate=0.1, weight_decay=0.2), ZERO_GRADS, PARAMS)
    np.testing.assert_allclose(every_param["l1"]["bias"], -0.02 * PARAMS["l1"]["bias"], rtol=1e-6)


def test_lamb_weight_decay_is_masked():
    config = LambConfig(learning_rate=0.1, weight_decay=WeightDecayConfig(value=0.2))
    updates = one_update(config, ZERO_GRADS, PARAMS)
    np.testing.assert_allclose(updates["l1"]["bias"], 0.0)
    assert np.all(np.sign(updates["l1"]["kernel"]) == -np.sign(PARAMS["l1"]["kernel"]))


@pytest.mark.parametrize(
    "config",
    [
        AdamWConfig(weight_decay=0.1, transforms={"wd": WeightDecayConfig(value=0.01)}),
        AdamWConfig(weight_decay=WeightDecayConfig(value=0.1), transforms={"wd": WeightDecayConfig(value=0.01)}),
        LambConfig(weight_decay=0.1, transforms={"wd": WeightDecayConfig(value=0.01, before_optimizer=True)}),
        SGDConfig(transforms={"wd": WeightDecayConfig(value=0.1), "wd2": WeightDecayConfig(value=0.2)}),
    ],
)
def test_double_weight_decay_is_refused(config):
    with pytest.raises(ValueError, match="more than once") as info:
        build_optimizer(config)
    assert "optimizer.transforms.wd" in str(info.value)
    assert "optimizer.weight_decay" in str(info.value) or "optimizer.transforms.wd2" in str(info.value)


def test_zero_valued_decays_do_not_conflict():
    build_optimizer(AdamWConfig(weight_decay=0.0, transforms={"wd": WeightDecayConfig(value=0.01)}))
    build_optimizer(AdamWConfig(weight_decay=0.1, transforms={"wd": WeightDecayConfig(value=0.0)}))


def test_coupled_adamw_weight_decay_runs_before_the_optimizer():
    coupled = AdamWConfig(learning_rate=0.1, weight_decay=WeightDecayConfig(value=0.5, before_optimizer=True))
    updates = one_update(coupled, ZERO_GRADS, PARAMS)
    np.testing.assert_allclose(updates["l1"]["kernel"], -0.1 * jnp.sign(PARAMS["l1"]["kernel"]), rtol=1e-5)


def test_weight_decay_parses_like_the_original_configs():
    data = {
        "class_name": "WeightDecay",
        "mode": "whitelist",
        "parameter_regex_exclude": "",
        "parameter_regex_include": "((.*weight$)|(.*kernel$))",
        "value": 0.01,
    }
    config = parse_config(AdamWConfig, {"weight_decay": data})
    assert isinstance(config.weight_decay, WeightDecayConfig)
    assert config.weight_decay.value == 0.01 and not config.weight_decay.before_optimizer
    with pytest.raises((ValueError, TypeError)):
        parse_config(AdamWConfig, {"weight_decay": {**data, "mode": "greylist"}})
