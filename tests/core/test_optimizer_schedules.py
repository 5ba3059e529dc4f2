"""Closed-form checks of the configured learning-rate schedules."""

import math

import pytest
from compoconf import parse_config

from jax_trainer.optimizer import (
    AdamWConfig,
    ConcatScheduleConfig,
    ConstantScheduleConfig,
    CosineScheduleConfig,
    ExponentialScheduleConfig,
    LinearScheduleConfig,
    ScheduleInterface,
    WarmupCosineDecayScheduleConfig,
    build_optimizer,
    build_schedule,
)
from jax_trainer.config_errors import ConfigError


def values(schedule, steps):
    return [float(schedule(step)) for step in steps]


def cosine_between(start, end, fraction):
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * fraction))


def test_warmup_cosine_closed_form():
    config = WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10, steps=110, decay_factor=0.1)
    schedule = build_schedule(config, None)
    expected = [0.0, 0.5, 1.0, cosine_between(1.0, 0.1, 0.25), 0.55, 0.1, 0.1]
    assert values(schedule, [0, 5, 10, 35, 60, 110, 200]) == pytest.approx(expected, abs=1e-6)


def test_warmup_cosine_init_value_and_end_value():
    config = WarmupCosineDecayScheduleConfig(init_value=0.2, peak_value=2.0, warmup_steps=4, steps=24, end_value=0.5)
    schedule = build_schedule(config, None)
    assert values(schedule, [0, 2, 4, 14, 24]) == pytest.approx([0.2, 1.1, 2.0, 1.25, 0.5], abs=1e-6)


def test_warmup_cosine_length_from_total_steps_or_decay_steps():
    derived = build_schedule(WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10), total_steps=50)
    from_decay = build_schedule(WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10, decay_steps=40), 999)
    for schedule in (derived, from_decay):
        assert values(schedule, [10, 30, 50]) == pytest.approx([1.0, 0.5, 0.0], abs=1e-6)


def test_warmup_cosine_decay_steps_must_match_steps():
    with pytest.raises(ValueError, match="decay_steps"):
        WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10, decay_steps=50, steps=110)
    bad = {"class_name": "WarmupCosineDecaySchedule", "peak_value": 1.0, "warmup_steps": 10, "decay_steps": 5}
    bad["steps"] = 20
    with pytest.raises(ValueError, match=r"decay_steps \(5\) must equal steps - warmup_steps"):
        parse_config(AdamWConfig, {"learning_rate": bad})
    consistent = WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10, decay_steps=100, steps=110)
    assert float(build_schedule(consistent, None)(110)) == pytest.approx(0.0, abs=1e-7)


def test_warmup_cosine_end_value_contradicting_decay_factor():
    with pytest.raises(ValueError, match="end_value"):
        WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=1, steps=10, decay_factor=0.1, end_value=0.3)


def test_missing_length_names_the_field():
    with pytest.raises(ValueError, match=r"WarmupCosineDecaySchedule\.steps"):
        build_schedule(WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10), None)
    with pytest.raises(ValueError, match=r"CosineSchedule\.decay_steps"):
        build_schedule(CosineScheduleConfig(init_value=1.0), None)
    with pytest.raises(ValueError, match=r"LinearSchedule\.transition_steps"):
        build_schedule(LinearScheduleConfig(init_value=1.0, end_value=0.0), None)


def test_warmup_longer_than_run_is_rejected():
    with pytest.raises(ValueError, match="warmup_steps"):
        build_schedule(WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=10), total_steps=10)


def test_warmup_longer_than_run_names_the_path_and_both_numbers():
    config = AdamWConfig(learning_rate=WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=100))
    with pytest.raises(ConfigError) as info:
        build_optimizer(config, total_steps=40)
    assert info.value.path == "optimizer.learning_rate.warmup_steps"
    assert str(info.value).startswith("optimizer.learning_rate.warmup_steps (100)") and "(40," in str(info.value)


def test_warmup_longer_than_its_concat_piece_names_the_piece():
    warmup = WarmupCosineDecayScheduleConfig(peak_value=1.0, warmup_steps=50)
    config = AdamWConfig(learning_rate=ConcatScheduleConfig([ConstantScheduleConfig(0.1), warmup], boundaries=[10]))
    with pytest.raises(ConfigError) as info:
        build_optimizer(config, total_steps=40)
    assert info.value.path == "optimizer.learning_rate.schedules.1.warmup_steps"
    assert "(50)" in str(info.value) and "(30," in str(info.value)


def test_elementary_schedules_closed_form():
    assert values(build_schedule(ConstantScheduleConfig(value=0.3), None), [0, 1000]) == pytest.approx([0.3, 0.3])
    assert values(build_schedule(0.25, None), [0, 7]) == pytest.approx([0.25, 0.25])
    cosine = build_schedule(CosineScheduleConfig(init_value=2.0, alpha=0.5), total_steps=100)
    assert values(cosine, [0, 50, 100]) == pytest.approx([2.0, 1.5, 1.0], abs=1e-6)
    linear = build_schedule(LinearScheduleConfig(init_value=1.0, end_value=3.0, transition_steps=4), None)
    assert values(linear, [0, 1, 4, 9]) == pytest.approx([1.0, 1.5, 3.0, 3.0])
    exponential = build_schedule(ExponentialScheduleConfig(init_value=1.0, decay_rate=0.5, transition_steps=10), None)
    assert values(exponential, [0, 10, 15, 20]) == pytest.approx([1.0, 0.5, 0.5**1.5, 0.25], rel=1e-5)
    stairs = ExponentialScheduleConfig(
        init_value=1.0, decay_rate=0.5, transition_steps=10, staircase=True, end_value=0.3
    )
    assert values(build_schedule(stairs, None), [9, 15, 20, 40]) == pytest.approx([1.0, 0.5, 0.3, 0.3])
    over_run = build_schedule(ExponentialScheduleConfig(init_value=1.0, decay_rate=0.1), total_steps=40)
    assert float(over_run(40)) == pytest.approx(0.1, rel=1e-5)


def test_concat_three_pieces_hits_each_boundary():
    config = ConcatScheduleConfig(
        schedules=[
            LinearScheduleConfig(init_value=0.0, end_value=1.0),
            ConstantScheduleConfig(value=1.0),
            CosineScheduleConfig(init_value=1.0),
        ],
        boundaries=[10, 30],
    )
    schedule = build_schedule(config, total_steps=50)
    steps = [0, 5, 10, 29, 30, 40, 50]
    assert values(schedule, steps) == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0], abs=1e-6)


def test_concat_parses_nested_dicts_and_checks_boundaries():
    data = {
        "class_name": "ConcatSchedule",
        "schedules": [
            {"class_name": "LinearSchedule", "init_value": 0.0, "end_value": 2.0, "transition_steps": 4},
            {"class_name": "ExponentialSchedule", "init_value": 2.0, "decay_rate": 0.5, "transition_steps": 2},
        ],
        "boundaries": [4],
    }
    schedule = build_schedule(parse_config(ScheduleInterface.cfgtype, data), None)
    assert values(schedule, [2, 4, 6]) == pytest.approx([1.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="boundaries"):
        ConcatScheduleConfig(schedules=[ConstantScheduleConfig(value=1.0)] * 3, boundaries=[5])
    with pytest.raises(ValueError, match="increasing"):
        ConcatScheduleConfig(schedules=[ConstantScheduleConfig(value=1.0)] * 3, boundaries=[5, 5])
