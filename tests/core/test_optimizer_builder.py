"""Parsing optimizer configs from plain dicts (as YAML gives them) and reading the learning rate from state."""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from compoconf import ConfigInterface, dump_config, parse_config

from jax_trainer.optimizer import (
    AdamWConfig,
    ConstantScheduleConfig,
    OptimizerInterface,
    SGDConfig,
    WarmupCosineDecayScheduleConfig,
    build_optimizer,
    current_learning_rate,
)


@dataclass
class Holder(ConfigInterface):
    optimizer: OptimizerInterface.cfgtype


SCHEDULES = [
    {"class_name": "ConstantSchedule", "value": 0.01},
    {"class_name": "CosineSchedule", "init_value": 0.01, "alpha": 0.1},
    {"class_name": "LinearSchedule", "init_value": 0.0, "end_value": 0.01, "transition_steps": 5},
    {"class_name": "ExponentialSchedule", "init_value": 0.01, "decay_rate": 0.5, "staircase": True},
    {"class_name": "WarmupCosineDecaySchedule", "peak_value": 0.01, "warmup_steps": 2},
    {
        "class_name": "ConcatSchedule",
        "schedules": [
            {"class_name": "ConstantSchedule", "value": 0.0},
            {"class_name": "CosineSchedule", "init_value": 1.0},
        ],
        "boundaries": [3],
    },
]
TRANSFORMS = {
    "clip": {"class_name": "GradClipNorm", "max_norm": 1.0},
    "clip_updates": {"class_name": "GradClipValue", "max_delta": 0.5, "before_optimizer": False},
    "wd": {"class_name": "WeightDecay", "value": 0.01, "mode": "blacklist", "parameter_regex_exclude": ".*bias$"},
}
OPTIMIZERS = [
    {"class_name": "AdamW", "learning_rate": 1e-3, "b1": 0.8, "b2": 0.99, "eps": 1e-7, "nesterov": True,
     "weight_decay": 0.01},
    {"class_name": "Adam", "learning_rate": 1, "transforms": TRANSFORMS},
    {"class_name": "SGD", "learning_rate": "0.1", "momentum": 0.9, "nesterov": True, "transforms": TRANSFORMS},
    {"class_name": "Lamb", "learning_rate": 2e-3, "weight_decay": {"class_name": "WeightDecay", "value": 0.1}},
]
PARAMS = {"l1": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones((3,))}}


def run_steps(tx, n):
    state = tx.init(PARAMS)
    params = PARAMS
    for _ in range(n):
        updates, state = tx.update(jax.tree.map(jnp.ones_like, params), state, params)
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("data", OPTIMIZERS, ids=[d["class_name"] for d in OPTIMIZERS])
def test_each_optimizer_parses_builds_and_round_trips(data):
    config = parse_config(Holder, {"optimizer": data}).optimizer
    assert isinstance(config.learning_rate, float)
    assert parse_config(Holder, {"optimizer": dump_config(config)}).optimizer == config
    params = run_steps(build_optimizer(config, total_steps=10).tx, 2)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(params))
    assert not np.allclose(params["l1"]["kernel"], PARAMS["l1"]["kernel"])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=[s["class_name"] for s in SCHEDULES])
def test_each_schedule_parses_as_learning_rate(schedule):
    config = parse_config(Holder, {"optimizer": {"class_name": "AdamW", "learning_rate": schedule}}).optimizer
    assert config.learning_rate.class_name == schedule["class_name"]
    assert parse_config(Holder, {"optimizer": dump_config(config)}).optimizer == config
    bundle = build_optimizer(config, total_steps=10)
    state = bundle.tx.init(PARAMS)
    assert float(current_learning_rate(state)) == pytest.approx(float(bundle.learning_rate_fn(0)))


def test_original_jax_trainer_optimizer_block_loads():
    data = {
        "b1": 0.9,
        "b2": 0.999,
        "class_name": "AdamW",
        "eps": 1.0e-08,
        "learning_rate": {
            "class_name": "WarmupCosineDecaySchedule",
            "decay_factor": 0.1,
            "decay_steps": 1555,
            "init_value": 0.0,
            "peak_value": 0.001,
            "steps": 1755,
            "warmup_steps": 200,
        },
        "nesterov": False,
        "weight_decay": {
            "class_name": "WeightDecay",
            "mode": "whitelist",
            "parameter_regex_exclude": "",
            "parameter_regex_include": "((.*weight$)|(.*kernel$))",
            "value": 0.01,
        },
    }
    bundle = build_optimizer(parse_config(Holder, {"optimizer": data}).optimizer, total_steps=None)
    assert float(bundle.learning_rate_fn(200)) == pytest.approx(1e-3)
    assert float(bundle.learning_rate_fn(1755)) == pytest.approx(1e-4)


def test_unknown_keys_and_classes_are_rejected():
    with pytest.raises(ValueError, match="momentm"):
        parse_config(Holder, {"optimizer": {"class_name": "SGD", "momentm": 0.9}})
    typo = {"class_name": "WarmupCosineDecaySchedule", "peak_valu": 1.0, "warmup_steps": 1}
    with pytest.raises(ValueError, match="peak_valu"):
        parse_config(Holder, {"optimizer": {"class_name": "AdamW", "learning_rate": typo}})
    with pytest.raises((KeyError, ValueError), match="NoSuchSchedule"):
        parse_config(Holder, {"optimizer": {"class_name": "AdamW", "learning_rate": {"class_name": "NoSuchSchedule"}}})


def test_current_learning_rate_inside_jit_follows_the_schedule():
    schedule = WarmupCosineDecayScheduleConfig(init_value=0.0, peak_value=1.0, warmup_steps=3)
    bundle = build_optimizer(SGDConfig(learning_rate=schedule, momentum=0.9), total_steps=12)

    @jax.jit
    def step(params, state):
        updates, state = bundle.tx.update(jax.tree.map(jnp.ones_like, params), state, params)
        return optax.apply_updates(params, updates), state, current_learning_rate(state)

    params, state = PARAMS, bundle.tx.init(PARAMS)
    assert float(current_learning_rate(state)) == pytest.approx(0.0)
    for k in range(12):
        params, state, lr = step(params, state)
        assert float(lr) == pytest.approx(float(bundle.learning_rate_fn(k)), abs=1e-6)
    assert float(lr) != pytest.approx(float(bundle.learning_rate_fn(0)))


def test_current_learning_rate_through_multisteps_and_constant_rate():
    bundle = build_optimizer(AdamWConfig(learning_rate=ConstantScheduleConfig(value=0.05)))
    wrapped = optax.MultiSteps(bundle.tx, every_k_schedule=2)
    assert float(jax.jit(current_learning_rate)(wrapped.init(PARAMS))) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="injected learning rate"):
        current_learning_rate(optax.adam(0.1).init(PARAMS))
