"""Ported from the original projects' optimizer tests: kpoeppel/jax_trainer tests/optimizer/test_optimizer.py,
test_scheduler.py, test_transforms.py and phlippe/jax_trainer tests/optimizer/test_optimizer.py.

Renames (SPEC.md): ``jax_trainer.optimizer.optimizer`` / ``.scheduler`` are ``jax_trainer.optimizer``;
``GradientTransformInterface`` is ``TransformInterface``; ``SGD(config).scheduler`` / ``.init`` / ``.update`` are
``build_optimizer(config, total_steps)`` → ``.learning_rate_fn`` / ``.tx``; ``optimizer.weight_decay_mask`` is
``WeightDecay(config).mask``; schedule lengths are optax's (``transition_steps``, ``decay_steps``) and may be left
out (then the run's length); ConcatSchedule takes ``boundaries`` instead of per-piece ``steps``. phlippe's
``ml_collections`` optimizer dicts are written as the equivalent config classes. Beyond the originals' "it builds",
each update is compared with optax's own optimizer."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_trainer.optimizer import (
    SGDConfig,
    AdamConfig,
    AdamWConfig,
    ConcatScheduleConfig,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    ExponentialScheduleConfig,
    GradClipNormConfig,
    GradClipValueConfig,
    LambConfig,
    LinearScheduleConfig,
    TransformInterface,
    WarmupCosineDecayScheduleConfig,
    WeightDecay,
    WeightDecayConfig,
    build_optimizer,
    build_schedule,
)

PARAMS = {"w": jnp.array([1.0, 2.0, 3.0])}
GRADS = {"w": jnp.array([0.1, 0.2, 0.3])}
LAYERS = {
    "layer1": {"weight": jnp.array([1.0, 2.0, 3.0]), "bias": jnp.array([0.1, 0.2, 0.3])},
    "layer2": {"weight": jnp.array([4.0, 5.0, 6.0]), "bias": jnp.array([0.4, 0.5, 0.6])},
}


def one_update(config, params=PARAMS, grads=GRADS, total_steps=100):
    tx = build_optimizer(config, total_steps).tx
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


# ---------------------------------------------------------------- configs (kpoeppel test_optimizer.py)
def test_sgd_config():
    config = SGDConfig(learning_rate=0.01)
    assert config.momentum is None and config.nesterov is False
    config = SGDConfig(learning_rate=LinearScheduleConfig(0.01, 0.001, 100), momentum=0.9, nesterov=True)
    assert isinstance(config.learning_rate, LinearScheduleConfig) and config.momentum == 0.9 and config.nesterov


def test_adamw_config():
    config = AdamWConfig(learning_rate=0.01)
    assert (config.b1, config.b2, config.eps) == (0.9, 0.999, 1e-8)
    assert config.weight_decay == 0.0  # a float or a WeightDecayConfig (the original always held the latter)
    config = AdamWConfig(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=WeightDecayConfig(value=0.01))
    assert (config.b1, config.b2, config.eps, config.weight_decay.value) == (0.8, 0.99, 1e-6, 0.01)


# ---------------------------------------------------------------- optimizers
def test_sgd_with_float_lr_is_optax_sgd():
    updates = one_update(SGDConfig(learning_rate=0.01, momentum=0.9, nesterov=True))
    reference = optax.sgd(0.01, momentum=0.9, nesterov=True)
    expected, _ = reference.update(GRADS, reference.init(PARAMS), PARAMS)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-6)


@pytest.mark.parametrize("make", [lambda lr: SGDConfig(learning_rate=lr, momentum=0.9, nesterov=True),
                                  lambda lr: AdamWConfig(learning_rate=lr, b1=0.8, b2=0.99, eps=1e-6)])
def test_optimizer_follows_a_linear_schedule(make):
    bundle = build_optimizer(make(LinearScheduleConfig(init_value=0.01, end_value=0.001, transition_steps=100)), 100)
    for step, value in ((0, 0.01), (50, 0.0055), (100, 0.001)):
        np.testing.assert_allclose(bundle.learning_rate_fn(step), value, rtol=1e-6)
    updates, _ = bundle.tx.update(GRADS, bundle.tx.init(PARAMS), PARAMS)
    assert updates["w"].shape == PARAMS["w"].shape


def test_adamw_with_weight_decay_is_optax_adamw():
    config = AdamWConfig(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6,
                         weight_decay=WeightDecayConfig(value=0.01, parameter_regex_include=".*"))
    expected_tx = optax.adamw(0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.01)
    expected, _ = expected_tx.update(GRADS, expected_tx.init(PARAMS), PARAMS)
    np.testing.assert_allclose(one_update(config)["w"], expected["w"], rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda wd: AdamWConfig(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=wd),
    lambda wd: LambConfig(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6, eps_root=0.0, weight_decay=wd),
], ids=["AdamW", "Lamb"])
def test_weight_decay_mask_selects_weights_not_biases(make):
    decay = WeightDecayConfig(value=0.01, mode="whitelist", parameter_regex_include=".*weight.*")
    mask = WeightDecay(decay).mask(LAYERS)
    assert mask == {"layer1": {"weight": True, "bias": False}, "layer2": {"weight": True, "bias": False}}
    zeros = {layer: {k: jnp.zeros(3) for k in leaves} for layer, leaves in LAYERS.items()}
    updates = one_update(make(decay), LAYERS, zeros)
    for layer in LAYERS:  # with zero gradients only the decay moves parameters: the weights, not the biases
        assert jnp.all(updates[layer]["weight"] != 0.0) and jnp.all(updates[layer]["bias"] == 0.0)


# ---------------------------------------------------------------- phlippe test_optimizer.py: every combination builds
SCHEDULES = {
    "float": 0.001,
    "constant": ConstantScheduleConfig(value=0.001),
    "cosine_decay": CosineScheduleConfig(init_value=0.001, alpha=0.1, decay_steps=1000),
    "exponential_decay": ExponentialScheduleConfig(init_value=0.001, decay_rate=0.1, transition_steps=1),
    "exponential_decay_end_lr": ExponentialScheduleConfig(init_value=0.001, decay_rate=0.1, end_value=1e-4),
    "warmup_cosine_decay": WarmupCosineDecayScheduleConfig(peak_value=0.001, warmup_steps=100, decay_factor=0.1),
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("make", [SGDConfig, AdamConfig, AdamWConfig], ids=["sgd", "adam", "adamw"])
def test_build_optimizer_with_each_schedule(make, schedule):
    bundle = build_optimizer(make(learning_rate=SCHEDULES[schedule]), total_steps=100 * 1000)
    assert isinstance(bundle.tx, optax.GradientTransformation)
    state = bundle.tx.init(PARAMS)
    for _ in range(2):  # the warmup starts at 0: its first update is zero
        updates, state = bundle.tx.update(GRADS, state, PARAMS)
    assert jnp.all(jnp.isfinite(updates["w"])) and jnp.all(updates["w"] != 0)


def test_build_optimizer_with_gradient_clipping_and_weight_decay():
    config = AdamConfig(learning_rate=ConstantScheduleConfig(value=0.001), transforms={
        "clip_norm": GradClipNormConfig(max_norm=1.0), "clip_value": GradClipValueConfig(max_delta=0.1),
        "decay": WeightDecayConfig(value=0.01)})
    assert isinstance(build_optimizer(config, 1000).tx, optax.GradientTransformation)
    assert one_update(config, LAYERS, LAYERS)["layer1"]["weight"].shape == (3,)


# ---------------------------------------------------------------- schedules (kpoeppel test_scheduler.py)
def values(config, steps, total_steps=None):
    schedule = build_schedule(config, total_steps)
    return [float(schedule(s)) for s in steps]


def test_constant_schedule():
    np.testing.assert_allclose(values(ConstantScheduleConfig(value=0.1), [0, 50, 100, 200]), [0.1] * 4)


def test_cosine_schedule():
    start, middle, end = values(CosineScheduleConfig(init_value=0.1, alpha=0.1, decay_steps=100), [0, 50, 100])
    np.testing.assert_allclose([start, end], [0.1, 0.01], rtol=1e-6)
    assert 0.01 < middle < 0.1


def test_linear_schedule_and_its_length_from_the_run():
    np.testing.assert_allclose(values(LinearScheduleConfig(0.1, 0.01, 100), [0, 50, 100]), [0.1, 0.055, 0.01], rtol=1e-6)
    np.testing.assert_allclose(values(LinearScheduleConfig(0.1, 0.01), [0, 50, 100], 100), [0.1, 0.055, 0.01], rtol=1e-6)


def test_exponential_schedule():
    config = ExponentialScheduleConfig(init_value=0.1, decay_rate=0.1, transition_steps=100, end_value=0.01)
    start, middle, end = values(config, [0, 50, 100])
    np.testing.assert_allclose([start, end], [0.1, 0.01], rtol=1e-6)
    assert 0.01 < middle < 0.1


def test_concat_schedule():
    config = ConcatScheduleConfig(
        schedules=[ConstantScheduleConfig(value=0.1), LinearScheduleConfig(0.1, 0.01, transition_steps=50)],
        boundaries=[50],
    )
    got = values(config, [0, 25, 49, 50, 75, 100], total_steps=100)
    np.testing.assert_allclose(got, [0.1, 0.1, 0.1, 0.1, 0.055, 0.01], rtol=1e-6)
    with pytest.raises(ValueError, match="boundaries"):
        ConcatScheduleConfig(schedules=config.schedules, boundaries=[])


def test_warmup_cosine_decay_schedule_and_its_checks():
    config = WarmupCosineDecayScheduleConfig(init_value=0.0, peak_value=0.1, end_value=0.01, warmup_steps=20,
                                             decay_steps=80, steps=100)
    np.testing.assert_allclose(values(config, [0, 10, 20, 100]), [0.0, 0.05, 0.1, 0.01], rtol=1e-6, atol=1e-9)
    assert 0.01 < values(config, [60])[0] < 0.1
    for bad in ({"decay_steps": 70, "steps": 100}, {"decay_steps": 0, "steps": 20}, {"steps": 20}):
        with pytest.raises(ValueError):
            WarmupCosineDecayScheduleConfig(init_value=0.0, peak_value=0.1, warmup_steps=20, **bad)


# ---------------------------------------------------------------- transforms (kpoeppel test_transforms.py)
def test_transform_configs():
    assert GradClipNormConfig(max_norm=1.0).before_optimizer is True
    assert GradClipValueConfig(max_delta=0.5, before_optimizer=False).before_optimizer is False
    with pytest.raises(ValueError):
        GradClipNormConfig(max_norm=0.0)


def apply(config, params, grads):
    transform = config.instantiate(TransformInterface).build(learning_rate=1.0)
    out, _ = transform.update(grads, transform.init(params), params)
    return out


def test_grad_clip_norm():
    grads = {"w": jnp.array([10.0, 20.0, 30.0])}
    np.testing.assert_allclose(apply(GradClipNormConfig(max_norm=1.0), PARAMS, grads)["w"], grads["w"] / jnp.sqrt(1400.0), rtol=1e-5)


def test_grad_clip_value():
    np.testing.assert_allclose(apply(GradClipValueConfig(max_delta=0.5), PARAMS, {"w": jnp.array([0.3, 0.6, 0.9])})["w"],
                               [0.3, 0.5, 0.5])


def test_weight_decay_before_the_optimizer_adds_value_times_param():
    zeros = {layer: {k: jnp.zeros(3) for k in leaves} for layer, leaves in LAYERS.items()}
    out = apply(WeightDecayConfig(value=0.01, before_optimizer=True), LAYERS, zeros)
    for layer in LAYERS:  # the default include decays *weight / *kernel, not biases
        np.testing.assert_allclose(out[layer]["weight"], 0.01 * LAYERS[layer]["weight"], rtol=1e-6)
        assert jnp.all(out[layer]["bias"] == 0.0)
