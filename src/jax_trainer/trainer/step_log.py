"""Step logging: every ``log_steps_every`` steps the window's metrics go to the logger without draining the device.

At a log point the loop dispatches the window's results (and a fresh window into the carry). The values are read
once the device has computed them (``Logger.defer`` with a readiness check, polled after each step's dispatch), so
the host never waits for them: waiting would leave the device idle until the host dispatched again. With
``detect_nans`` the log point syncs anyway, to stop at a non-finite value, so the window is read and written at once.
"""

from __future__ import annotations

import functools
import time

import numpy as np


class StepLog:
    """The log windows of one train epoch; a window's start (step, time) gives step time and throughput."""

    def __init__(self, trainer, epoch_idx: int, bar):
        self.trainer, self.epoch_idx, self.bar = trainer, epoch_idx, bar
        self.start_step, self.start_time = trainer.global_step, time.perf_counter()

    def log(self, acc: dict) -> dict:
        """Log the window ending at the current step; returns ``acc`` with a fresh window."""
        trainer = self.trainer
        window, acc = trainer._compiled["take_window"](acc)
        write = functools.partial(self._write, window, trainer.global_step)
        if trainer.config.detect_nans:
            trainer._check_nonfinite(acc, self.epoch_idx)
            write()
        else:
            trainer.logger.defer(write, ready=window.is_ready)
        return acc

    def _write(self, window, step: int) -> None:
        *values, n_samples = np.asarray(window).tolist()  # the window's metrics, then its example count
        scalars = self.trainer.derive_metrics(dict(zip(self.trainer._train_acc.window_keys, values)))
        now = time.perf_counter()
        n_steps = max(1, step - self.start_step)
        scalars["train/step_time"] = (now - self.start_time) / n_steps
        scalars["train/samples_per_sec"] = int(n_samples) / (now - self.start_time)
        self.start_step, self.start_time = step, now
        self.trainer.logger.log_scalars(scalars, step)
        self.bar.set_postfix(loss=scalars.get("train/loss"))
