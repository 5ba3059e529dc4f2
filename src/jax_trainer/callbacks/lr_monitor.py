"""LearningRateMonitor: the learning rate read from the optimizer state, under Lightning's series name."""

from __future__ import annotations

from dataclasses import dataclass

import jax
from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.optimizer import current_learning_rate


@dataclass
class LearningRateMonitorConfig(CallbackConfig):
    """Logs at the start of a run (not again when it resumes) and at the end of every ``every_n_epochs``-th train
    epoch."""


@register
class LearningRateMonitor(Callback):
    """Logs ``optimizer/lr-<Optimizer>`` (e.g. ``optimizer/lr-AdamW``, as Lightning's ``lr-AdamW``).

    The value is read from the optimizer state, not recomputed from the schedule: it is the rate the latest
    update used (gradient accumulation and other wrappers included) and, before any update, the first
    step's rate. The loop itself logs ``optimizer/lr`` per log window and ``optimizer/lr_epoch`` per epoch;
    this series adds the starting point and the name Lightning users look for.
    """

    config: LearningRateMonitorConfig

    @property
    def key(self) -> str:
        name = getattr(self.trainer.optimizer_config, "class_name", "") or "optimizer"
        return f"optimizer/lr-{name}"

    def __init__(self, config: LearningRateMonitorConfig, trainer=None, data_module=None):
        """See :class:`~jax_trainer.callbacks.base.Callback`."""
        super().__init__(config, trainer, data_module)
        self._started = False  # the starting point is logged; checkpointed so a resumed run does not log it again

    def on_training_start(self) -> None:
        """The rate of the first step, once per run: a run resumed from a checkpoint (at the step it holds, whose
        point the interrupted run already logged or, inside an epoch, never logs) does not add a point."""
        if not self._started:
            self._log()
            self._started = True

    def state_dict(self) -> dict:
        return {"started": self._started}

    def load_state_dict(self, state: dict) -> None:
        self._started = bool(state.get("started", False))

    def on_filtered_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        self._log()

    def _log(self) -> None:
        trainer = self.trainer
        lr = float(jax.device_get(current_learning_rate(trainer.backend.opt_state(trainer.state))))
        trainer.logger.log_scalars({self.key: lr}, trainer.global_step)
