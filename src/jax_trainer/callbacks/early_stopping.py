"""EarlyStopping: stop training when a validation metric has stopped improving (Lightning semantics)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig, missing_metric

LOGGER = logging.getLogger("jax_trainer")
MODES = ("min", "max")


@dataclass
class EarlyStoppingConfig(CallbackConfig):
    """Stop after ``patience`` validations without an improvement of more than ``min_delta`` in ``monitor``."""

    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"EarlyStopping.mode must be one of {MODES}, got {self.mode!r}.")
        if self.patience < 1:
            raise ValueError(f"EarlyStopping.patience must be >= 1, got {self.patience}.")
        if self.min_delta < 0:
            raise ValueError(f"EarlyStopping.min_delta must be >= 0, got {self.min_delta}.")


@register
class EarlyStopping(Callback):
    """Sets ``trainer.should_stop``; the loop then ends the epoch loop cleanly (test, callbacks, finalize).

    A NaN value never counts as an improvement. The counters are part of the checkpointed callback state.
    """

    config: EarlyStoppingConfig

    def __init__(self, config: EarlyStoppingConfig, trainer=None):
        super().__init__(config, trainer)
        self.best: Optional[float] = None
        self.wait = 0
        self.stopped_epoch: Optional[int] = None

    def _improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.config.mode == "min":
            return value < self.best - self.config.min_delta
        return value > self.best + self.config.min_delta

    def on_filtered_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        key = self.config.monitor
        if key not in eval_metrics:
            raise missing_metric("EarlyStopping.monitor", key, eval_metrics, "validation metric")
        value = float(eval_metrics[key])
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.config.patience:
            self.stopped_epoch = epoch_idx
            self.trainer.should_stop = True
            LOGGER.info(
                "EarlyStopping: %s did not improve for %d validations (best %.6g); stopping after epoch %d.",
                key, self.wait, self.best if self.best is not None else math.nan, epoch_idx,
            )

    def state_dict(self) -> dict:
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.wait, self.stopped_epoch = state["best"], state["wait"], state["stopped_epoch"]
