"""Step logging: every ``log_steps_every`` steps the window's metrics go to the logger without draining the device.

At a log point the loop dispatches the window's results (and a fresh window into the carry). The values are read
once the device has computed them (``Logger.defer`` with a readiness check, polled after each step's dispatch), so
the host never waits for them: waiting would leave the device idle until the host dispatched again. With
``detect_nans`` the log point syncs anyway, to stop at a non-finite value, so the window is read and written at once.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

from jax_trainer.logger import keys
from jax_trainer.trainer import steps as S
from jax_trainer.trainer.runner import StepRunner


class StepLog:
    """The log windows of one train epoch; a window's start (step, time) gives step time and throughput: the
    host's wall time from the previous log point (or the epoch's start) to this one. The host runs at most a few
    dispatches ahead of the device (``pacing.py``), so over a window this is the device's time too.

    ``derive`` is the trainer's ``derive_metrics``; ``check_nonfinite(carry)`` raises at a non-finite value (with
    ``detect_nans``, else None).
    """

    def __init__(self, runner: StepRunner, logger, derive: Callable, check_nonfinite: Callable | None, step: int, bar):
        self.runner, self.logger, self.derive, self.check_nonfinite, self.bar = runner, logger, derive, check_nonfinite, bar
        self.start_step, self.start_time = step, time.perf_counter()

    def log(self, carry: S.Carry, step: int) -> S.Carry:
        """Log the window ending at ``step``; returns ``carry`` with a fresh window.

        The window's wall time is taken here, at its log point, not when its values are read: reads are deferred and
        batched, so their clock says when the host got to them, not how long the window took."""
        window, carry = self.runner.take_window(carry)
        now = time.perf_counter()
        seconds, n_steps = now - self.start_time, max(1, step - self.start_step)
        self.start_step, self.start_time = step, now
        write = functools.partial(self._write, window, step, seconds, n_steps)
        if self.check_nonfinite is not None:
            self.check_nonfinite(carry)
            write()
        else:
            self.logger.defer(write, ready=window.is_ready)
        return carry

    def _write(self, window, step: int, seconds: float, n_steps: int) -> None:
        *values, n_samples = window.values()  # the window's metrics, then its example count
        scalars = self.derive(dict(zip(self.runner.train_steps.accumulators.window_keys, values)))
        scalars[keys.STEP_TIME] = seconds / n_steps
        scalars[keys.SAMPLES_PER_SEC] = int(n_samples) / seconds
        self.logger.log_scalars(scalars, step)
        self.bar.set_postfix(loss=scalars.get(keys.TRAIN_LOSS))
