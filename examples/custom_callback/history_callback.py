"""A callback of your own: writes one CSV row per validated epoch and stops training at a target accuracy.

Hooks use the original jax_trainer's names (``on_validation_epoch_end``); Lightning's names for the same points
(``on_train_epoch_end``, ...) work too. ``state_dict``/``load_state_dict`` make it survive an exact resume.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

from compoconf import register

from jax_trainer.callbacks import Callback, CallbackConfig


@dataclass
class HistoryCallbackConfig(CallbackConfig):
    """``file``: the CSV file in the run directory; ``stop_at``: stop once ``monitor`` reaches it (null: never)."""

    file: str = "history.csv"
    monitor: str = "val/acc"
    stop_at: float | None = None


@register
class HistoryCallback(Callback):
    """Every ``every_n_epochs`` validated epochs: a row ``epoch, step, <monitor>`` in ``<log_dir>/<file>``."""

    config: HistoryCallbackConfig

    def __init__(self, config: HistoryCallbackConfig, trainer=None, data_module=None):
        super().__init__(config, trainer, data_module)
        self.best = None

    def on_filtered_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        value = float(eval_metrics[self.config.monitor])
        path = Path(self.trainer.log_dir) / self.config.file
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "step", self.config.monitor])
            writer.writerow([epoch_idx, self.trainer.global_step, value])
        self.best = value if self.best is None else max(self.best, value)
        if self.config.stop_at is not None and value >= self.config.stop_at:
            self.trainer.should_stop = True  # the loop stops after this epoch, cleanly (checkpoints, logs)

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
