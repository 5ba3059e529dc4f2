"""JAXProfiler: device traces of a few train steps, for TensorBoard's profile plugin or Perfetto."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import jax
from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig

LOGGER = logging.getLogger("jax_trainer")
NEVER = sys.maxsize
TIME_CHECK_STEPS = 50  # between traces the clock is read every this many steps; other steps compare ints only


@dataclass
class JAXProfilerConfig(CallbackConfig):
    """Trace ``profile_n_steps`` steps after step ``first_step``, then again each ``every_n_minutes`` after the
    previous trace ended (``0`` traces once). Traces go to ``<log_dir>/profile/plugins/profile/<run>/``."""

    every_n_minutes: float = 60.0
    first_step: int = 10
    profile_n_steps: int = 5

    def __post_init__(self):
        if self.first_step < 0 or self.profile_n_steps < 1 or self.every_n_minutes < 0:
            raise ValueError(
                "JAXProfiler needs first_step >= 0, profile_n_steps >= 1 and every_n_minutes >= 0; got "
                f"{self.first_step}, {self.profile_n_steps}, {self.every_n_minutes}."
            )


@register
class JAXProfiler(Callback):
    """``jax.profiler.start_trace``/``stop_trace`` around a window of steps.

    A trace stops after ``profile_n_steps`` steps or at the end of the train epoch, whichever is first, so
    it never includes evaluation; the state is waited on first so the trace holds the traced steps' device work.
    """

    config: JAXProfilerConfig

    def __init__(self, config: JAXProfilerConfig, trainer=None):
        super().__init__(config, trainer)
        self.trace_dir = None if trainer is None else trainer.log_dir / "profile"
        self.active = False
        self._next_step = NEVER
        self._stop_step = NEVER
        self._not_before = 0.0

    def on_training_start(self) -> None:
        if self.trainer.global_step <= self.config.first_step:
            self._next_step = self.config.first_step
        else:  # resumed past first_step: only the periodic traces remain
            self._schedule_by_time(self.trainer.global_step)

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        if self.active:
            if step >= self._stop_step:
                self._stop(step)
        elif step >= self._next_step:
            if time.monotonic() >= self._not_before:
                self._start(step)
            else:
                self._next_step = step + TIME_CHECK_STEPS

    def on_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        if self.active:
            self._stop(self.trainer.global_step)

    def finalize(self, status: str) -> None:
        if self.active:
            self._stop(self.trainer.global_step)

    def _start(self, step: int) -> None:
        n_steps = self.config.profile_n_steps
        LOGGER.info("JAXProfiler: tracing %d steps after step %d into %s.", n_steps, step, self.trace_dir)
        jax.profiler.start_trace(str(self.trace_dir))
        self.active = True
        self._stop_step = step + n_steps

    def _stop(self, step: int) -> None:
        try:
            jax.block_until_ready(self.trainer.state)
        finally:
            jax.profiler.stop_trace()
            self.active = False
        LOGGER.info("JAXProfiler: trace stopped at step %d.", step)
        self._schedule_by_time(step)

    def _schedule_by_time(self, step: int) -> None:
        if self.config.every_n_minutes <= 0:
            self._next_step = NEVER
            return
        self._not_before = time.monotonic() + 60.0 * self.config.every_n_minutes
        self._next_step = step + 1
