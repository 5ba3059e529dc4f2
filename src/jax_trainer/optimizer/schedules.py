"""Learning-rate schedules (optax underneath) configured by compoconf.

A schedule whose length is left out of its config takes it from ``total_steps``, which the trainer
computes as epochs x optimizer steps per epoch, so one config serves any dataset size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optax
from compoconf import ConfigInterface, register

from jax_trainer.config_errors import error_at
from jax_trainer.value_checks import check_rate

from .interfaces import ScheduleInterface


def _length(value: int | None, total_steps: int | None, field_name: str) -> int:
    """``value`` if set, else ``total_steps``; a clear error naming the field if neither is known."""
    length = value if value is not None else total_steps
    if length is None:
        raise ValueError(
            f"{field_name} is not set and no total step count is known to derive it from; "
            f"set {field_name} or train with a known number of steps"
        )
    if length <= 0:
        raise ValueError(f"{field_name} must be positive, got {length}")
    return int(length)


def build_schedule(
    learning_rate: float | ConfigInterface, total_steps: int | None, path: str | None = None
) -> optax.Schedule:
    """A constant schedule for a float, else the configured schedule built for ``total_steps``. With ``path`` (the
    config's dotted path, e.g. ``optimizer.learning_rate``), a length that does not fit is a ConfigError there."""
    if isinstance(learning_rate, (int, float)):
        return optax.constant_schedule(float(learning_rate))
    schedule = learning_rate.instantiate(ScheduleInterface)
    try:
        return schedule.build(total_steps)
    except ValueError as err:
        if path is None:
            raise
        raise error_at(err, learning_rate, path) from err


@dataclass
class ConstantScheduleConfig(ConfigInterface):
    value: float

    def __post_init__(self):
        check_rate("ConstantSchedule.value", self.value)


@register
class ConstantSchedule(ScheduleInterface):
    """The same value at every step."""

    config: ConstantScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        return optax.constant_schedule(self.config.value)


@dataclass
class CosineScheduleConfig(ConfigInterface):
    init_value: float
    decay_steps: int | None = None
    alpha: float = 0.0

    def __post_init__(self):
        check_rate("CosineSchedule.init_value", self.init_value)


@register
class CosineSchedule(ScheduleInterface):
    """Cosine decay from ``init_value`` to ``init_value * alpha`` over ``decay_steps`` (default: all steps)."""

    config: CosineScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        cfg = self.config
        steps = _length(cfg.decay_steps, total_steps, "CosineSchedule.decay_steps")
        return optax.cosine_decay_schedule(cfg.init_value, decay_steps=steps, alpha=cfg.alpha)


@dataclass
class LinearScheduleConfig(ConfigInterface):
    init_value: float
    end_value: float
    transition_steps: int | None = None

    def __post_init__(self):
        check_rate("LinearSchedule.init_value", self.init_value)
        check_rate("LinearSchedule.end_value", self.end_value)


@register
class LinearSchedule(ScheduleInterface):
    """Linear from ``init_value`` to ``end_value`` over ``transition_steps`` (default: all steps)."""

    config: LinearScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        cfg = self.config
        steps = _length(cfg.transition_steps, total_steps, "LinearSchedule.transition_steps")
        return optax.linear_schedule(cfg.init_value, cfg.end_value, transition_steps=steps)


@dataclass
class ExponentialScheduleConfig(ConfigInterface):
    init_value: float
    decay_rate: float
    transition_steps: int | None = None
    transition_begin: int = 0
    staircase: bool = False
    end_value: float | None = None

    def __post_init__(self):
        check_rate("ExponentialSchedule.init_value", self.init_value)
        check_rate("ExponentialSchedule.end_value", self.end_value)


@register
class ExponentialSchedule(ScheduleInterface):
    """``init_value * decay_rate ** ((step - transition_begin) / transition_steps)``, clipped at ``end_value``.

    Left out, ``transition_steps`` is the whole run, so ``decay_rate`` is the factor reached at the end.
    """

    config: ExponentialScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        cfg = self.config
        return optax.exponential_decay(
            cfg.init_value,
            transition_steps=_length(cfg.transition_steps, total_steps, "ExponentialSchedule.transition_steps"),
            decay_rate=cfg.decay_rate,
            transition_begin=cfg.transition_begin,
            staircase=cfg.staircase,
            end_value=cfg.end_value,
        )


@dataclass
class ConcatScheduleConfig(ConfigInterface):
    schedules: list[ScheduleInterface.cfgtype]
    boundaries: list[int]

    def __post_init__(self):
        if not self.schedules:
            raise ValueError("ConcatSchedule.schedules must hold at least one schedule")
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"ConcatSchedule.boundaries needs len(schedules) - 1 = {len(self.schedules) - 1} entries, "
                f"got {len(self.boundaries)}"
            )
        previous = 0
        for boundary in self.boundaries:
            if boundary <= previous:
                raise ValueError(
                    f"ConcatSchedule.boundaries must be positive and strictly increasing, got {self.boundaries}"
                )
            previous = boundary


@register
class ConcatSchedule(ScheduleInterface):
    """Schedules played one after another; piece ``i`` runs from ``boundaries[i-1]`` to ``boundaries[i]``.

    Boundaries are cumulative step indices and each piece sees its own step count starting at 0.
    A piece that leaves its length out gets the span between its boundaries; the last piece gets
    what remains of ``total_steps``.
    """

    config: ConcatScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        starts = [0, *self.config.boundaries]
        ends = [*self.config.boundaries, total_steps]
        pieces = []
        for i, (sub_config, start, end) in enumerate(zip(self.config.schedules, starts, ends)):
            span = end - start if end is not None and end > start else None
            pieces.append(build_schedule(sub_config, span, f"schedules.{i}"))
        return optax.join_schedules(pieces, boundaries=self.config.boundaries)


@dataclass
class WarmupCosineDecayScheduleConfig(ConfigInterface):
    peak_value: float
    warmup_steps: int
    init_value: float = 0.0
    decay_steps: int | None = None
    steps: int | None = None
    decay_factor: float = 0.0
    end_value: float | None = None

    def __post_init__(self):
        for name in ("peak_value", "init_value", "end_value"):
            check_rate(f"WarmupCosineDecaySchedule.{name}", getattr(self, name))
        if self.warmup_steps < 0:
            raise ValueError(f"WarmupCosineDecaySchedule.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.steps is not None and self.steps <= self.warmup_steps:
            raise ValueError(
                f"WarmupCosineDecaySchedule.warmup_steps ({self.warmup_steps}) must be less than steps ({self.steps})"
            )
        if self.decay_steps is not None and self.decay_steps <= 0:
            raise ValueError(f"WarmupCosineDecaySchedule.decay_steps must be > 0, got {self.decay_steps}")
        both_given = self.steps is not None and self.decay_steps is not None
        if both_given and self.decay_steps != self.steps - self.warmup_steps:
            raise ValueError(
                f"WarmupCosineDecaySchedule.decay_steps ({self.decay_steps}) must equal steps - warmup_steps "
                f"({self.steps} - {self.warmup_steps} = {self.steps - self.warmup_steps})"
            )
        if (
            self.end_value is not None
            and self.decay_factor != 0.0
            and not math.isclose(self.end_value, self.peak_value * self.decay_factor)
        ):
            raise ValueError(
                f"WarmupCosineDecaySchedule.end_value ({self.end_value}) contradicts decay_factor "
                f"({self.decay_factor} x peak_value {self.peak_value}); set only one of them"
            )


@register
class WarmupCosineDecaySchedule(ScheduleInterface):
    """Linear warmup ``init_value -> peak_value`` over ``warmup_steps``, then cosine decay to the end value.

    The end value (``end_value``, else ``peak_value * decay_factor``) is reached exactly at ``steps``,
    the total length including warmup: given, or ``warmup_steps + decay_steps``, or ``total_steps``.
    """

    config: WarmupCosineDecayScheduleConfig

    def build(self, total_steps: int | None) -> optax.Schedule:
        cfg = self.config
        if cfg.steps is None and cfg.decay_steps is not None:
            steps = cfg.warmup_steps + cfg.decay_steps
        else:
            steps = _length(cfg.steps, total_steps, "WarmupCosineDecaySchedule.steps")
        if steps <= cfg.warmup_steps:
            raise ValueError(
                f"WarmupCosineDecaySchedule.warmup_steps ({cfg.warmup_steps}) must be less than the schedule's length "
                f"({steps}, left out and so taken from the run's optimizer steps: epochs x steps per epoch or "
                "max_steps, over accumulate_grad_batches; or from its ConcatSchedule span); lower warmup_steps or "
                "train longer"
            )
        end_value = cfg.end_value if cfg.end_value is not None else cfg.peak_value * cfg.decay_factor
        return optax.warmup_cosine_decay_schedule(
            init_value=cfg.init_value,
            peak_value=cfg.peak_value,
            warmup_steps=cfg.warmup_steps,
            decay_steps=steps,
            end_value=end_value,
        )
