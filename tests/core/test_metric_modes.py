"""Metric aggregation modes as pure functions, against hand-computed numpy over uneven batch sizes.

Two log windows (steps 1-3 and 4-5) with a window reset between them, and the epoch accumulator across both,
exactly as the compiled train step folds them.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_trainer.logger.enums import LogFreq, LogMetricMode, LogMode
from jax_trainer.logger.metrics import (
    MetricSpec,
    active_in,
    concat_values,
    init_accumulator,
    parse_metric,
    result_keys,
    results_vector,
    split_metrics,
    update_accumulator,
)
from jax_trainer.trainer.steps import Accumulators
from logging_scenarios import SCALAR_MODES, reference  # reference: each mode written the obvious way in numpy

VALUES = np.array([-2.5, -0.75, -4.0, 3.25, 1.5])  # window 1 all negative, window 2 all positive
WEIGHTS = np.array([3.0, 5.0, 2.0, 4.0, 6.0])  # uneven batch sizes
WINDOWS = [slice(0, 3), slice(3, 5)]


def accumulator_results(acc, specs) -> dict:
    """The results vector the trainer fetches, by metric name."""
    return dict(zip(result_keys(specs), results_vector(acc, specs)))


def specs_for_every_mode() -> dict[str, MetricSpec]:
    return {f"train/{m.name.lower()}": MetricSpec(mode=m) for m in SCALAR_MODES}


@jax.jit
def _fold(acc, value, weight):
    specs = specs_for_every_mode()
    return update_accumulator(acc, {k: value for k in specs}, {}, specs, weight)


def test_reference_values_are_not_trivial():
    """Guards the test data: weighting changes the mean, and a MAX (MIN) that started from 0 would be wrong."""
    assert reference(LogMetricMode.MEAN, VALUES, WEIGHTS) != pytest.approx(VALUES.mean())
    assert reference(LogMetricMode.MAX, VALUES[WINDOWS[0]], WEIGHTS[WINDOWS[0]]) < 0
    assert reference(LogMetricMode.MIN, VALUES[WINDOWS[1]], WEIGHTS[WINDOWS[1]]) > 0


@pytest.mark.parametrize("mode", SCALAR_MODES, ids=lambda m: m.name)
def test_every_mode_over_two_windows_and_the_epoch(mode):
    specs = specs_for_every_mode()
    key = f"train/{mode.name.lower()}"
    epoch = init_accumulator(specs)
    for window in WINDOWS:
        acc = init_accumulator(specs)  # the window reset
        for value, weight in zip(VALUES[window], WEIGHTS[window]):
            acc = _fold(acc, jnp.float32(value), weight)
            epoch = _fold(epoch, jnp.float32(value), weight)
        got = float(accumulator_results(acc, specs)[key])
        assert got == pytest.approx(reference(mode, VALUES[window], WEIGHTS[window]), rel=1e-6, abs=1e-6)
    got = float(accumulator_results(epoch, specs)[key])
    assert got == pytest.approx(reference(mode, VALUES, WEIGHTS), rel=1e-6, abs=1e-6)


def test_accumulators_reset_the_window_but_not_the_epoch():
    """steps.Accumulators: STEP metrics only in the window, EPOCH only in the epoch part, ANY in both."""
    specs = {
        "train/std": MetricSpec(mode=LogMetricMode.STD),
        "train/min_step": MetricSpec(mode=LogMetricMode.MIN, log_freq=LogFreq.STEP),
        "train/max_epoch": MetricSpec(mode=LogMetricMode.MAX, log_freq=LogFreq.EPOCH),
    }
    accs = Accumulators(specs, windowed=True, track_nonfinite=False)
    assert set(accs.window_specs) == {"train/std", "train/min_step"}
    assert set(accs.epoch_specs) == {"train/std", "train/max_epoch"}
    fold = jax.jit(lambda c, v, w: c._replace(metrics=accs.fold(c.metrics, {k: v for k in specs}, {}, w)))
    carry = accs.init(start_step=7)
    for window in WINDOWS:
        for value, weight in zip(VALUES[window], WEIGHTS[window]):
            carry = fold(carry, jnp.float32(value), weight)
        finished, carry = accs.take_window(carry)  # the window's results (then its example count) and a fresh window
        *values, n_samples = finished.values()
        assert n_samples == WEIGHTS[window].sum()
        results = dict(zip(accs.window_keys, values))
        assert set(results) == {"train/std", "train/min_step"}
        expected_std = reference(LogMetricMode.STD, VALUES[window], WEIGHTS[window])
        assert float(results["train/std"]) == pytest.approx(expected_std, rel=1e-6)
        assert float(results["train/min_step"]) == reference(LogMetricMode.MIN, VALUES[window], WEIGHTS[window])
    assert int(carry.metrics.count) == 7 + len(VALUES)
    epoch = dict(zip(accs.epoch_keys, accs.epoch_results(carry).values()))
    assert set(epoch) == {"train/std", "train/max_epoch"}
    assert float(epoch["train/std"]) == pytest.approx(reference(LogMetricMode.STD, VALUES, WEIGHTS), rel=1e-6)
    assert float(epoch["train/max_epoch"]) == VALUES.max()


def test_std_is_stable_for_a_large_offset():
    """Values near 1e4 with spread ~0.2 in float32: sum-of-squares would lose every digit of the variance."""
    rng = np.random.default_rng(0)
    values = 1.0e4 + rng.normal(scale=0.2, size=64)
    weights = rng.integers(1, 9, size=64).astype(float)
    specs = {"s": MetricSpec(mode=LogMetricMode.STD)}
    update = jax.jit(lambda a, v, w: update_accumulator(a, {"s": v}, {}, specs, w))
    acc = init_accumulator(specs)
    for value, weight in zip(values, weights):
        acc = update(acc, jnp.float32(value), weight)
    expected = reference(LogMetricMode.STD, values, weights)
    assert float(accumulator_results(acc, specs)["s"]) == pytest.approx(expected, rel=2e-2)


def test_count_replaces_the_batch_size_as_weight():
    values, counts, specs = split_metrics({"acc": {"value": 0.5, "count": 10}, "loss": 2.0}, "train", LogMode.TRAIN)
    acc = update_accumulator(init_accumulator(specs), values, counts, specs, 2.0)
    values, counts, _ = split_metrics({"acc": {"value": 1.0, "count": 30}, "loss": 4.0}, "train", LogMode.TRAIN)
    acc = update_accumulator(acc, values, counts, specs, 6.0)
    results = accumulator_results(acc, specs)
    assert float(results["train/acc"]) == pytest.approx((0.5 * 10 + 1.0 * 30) / 40)
    assert float(results["train/loss"]) == pytest.approx((2.0 * 2 + 4.0 * 6) / 8)


def test_concat_values_are_kept_whole_and_never_accumulated():
    metrics = {"preds": {"value": jnp.arange(4), "mode": LogMetricMode.CONCAT}, "acc": 1.0}
    values, _, specs = split_metrics(metrics, "train", LogMode.TRAIN)
    assert set(accumulator_results(init_accumulator(specs), specs)) == {"train/acc"}
    concat = concat_values(values, specs)
    assert list(concat) == ["train/preds"]
    np.testing.assert_array_equal(concat["train/preds"], np.arange(4))


@pytest.mark.parametrize(
    "log_mode, train, val, test",
    [
        (LogMode.ANY, True, True, True),
        (LogMode.TRAIN, True, False, False),
        (LogMode.VAL, False, True, False),
        (LogMode.TEST, False, False, True),
        (LogMode.EVAL, False, True, True),
    ],
)
def test_log_mode_phases(log_mode, train, val, test):
    spec = MetricSpec(log_mode=log_mode)
    assert [active_in(spec, phase) for phase in (LogMode.TRAIN, LogMode.VAL, LogMode.TEST)] == [train, val, test]
    # The eval step is shared by val and test: it must compute every metric either of them logs.
    assert active_in(spec, LogMode.EVAL) == (val or test)
    _, _, specs = split_metrics({"m": {"value": 1.0, "log_mode": log_mode}}, "eval", LogMode.EVAL)
    assert bool(specs) == (val or test)


def test_names_and_string_enums():
    metrics = {
        "acc": 1.0,
        "custom/x": {"value": 2.0, "mode": "max", "log_freq": "epoch", "log_mode": "val"},
        "one": {"value": jnp.ones((1,))},
    }
    values, _, specs = split_metrics(metrics, "eval", LogMode.EVAL)
    assert sorted(values) == ["custom/x", "eval/acc", "eval/one"]
    assert specs["custom/x"] == MetricSpec(LogMetricMode.MAX, LogFreq.EPOCH, LogMode.VAL)
    assert values["eval/one"].shape == ()


@pytest.mark.parametrize(
    "metric, error, fragments",
    [
        (jnp.ones((3,)), ValueError, ["'bad'", "shape (3,)", "MEAN", "CONCAT"]),
        ({"value": jnp.ones((2, 2)), "mode": LogMetricMode.STD}, ValueError, ["'bad'", "(2, 2)", "STD"]),
        ({"value": 1.0, "mode": "median"}, ValueError, ["'bad'", "mode", "'median'", "MEAN"]),
        ({"value": 1.0, "mode": LogFreq.STEP}, ValueError, ["'bad'", "mode"]),
        ({"value": 1.0, "log_mode": "validation"}, ValueError, ["'bad'", "log_mode", "'validation'"]),
        ({"value": 1.0, "reduce": "sum"}, ValueError, ["'bad'", "reduce"]),
        ({"mode": LogMetricMode.SUM}, ValueError, ["'bad'", "'value'"]),
        ("high", TypeError, ["'bad'", "str"]),
    ],
)
def test_bad_metrics_name_the_metric(metric, error, fragments):
    with pytest.raises(error) as info:
        parse_metric("bad", metric)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_bad_metric_fails_inside_jit_with_its_name():
    def step(x):
        values, _, _ = split_metrics({"fine": x.mean(), "per_example": x}, "train", LogMode.TRAIN)
        return values

    with pytest.raises(ValueError, match="'per_example'"):
        jax.jit(step)(jnp.ones((4,)))
