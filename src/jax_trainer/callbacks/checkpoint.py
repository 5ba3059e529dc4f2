"""ModelCheckpoint: keep the best ``save_top_k`` checkpoints by a monitored metric, plus the latest.

The callback only decides which steps are worth keeping (a :class:`CheckpointPolicy`). Writing goes through the
trainer's checkpointer at save points (see ``checkpoint/checkpointer.py``): a checkpoint is written once every
callback has processed its step, by orbax in the background; the loop waits only when a save starts before the
previous one finished, and at the end of training.

"last" is the newest complete step directory in ``<log_dir>/checkpoints``: with ``save_last`` every
considered checkpoint is written and the previous "last" is removed unless it is among the top k, so
the newest directory is always the latest state (``--ckpt-path last`` resumes from it).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig, missing_metric
from jax_trainer.checkpoint import CheckpointPolicy, checkpoint_dir, committed_steps
from jax_trainer.logger import keys

LOGGER = logging.getLogger("jax_trainer")


@dataclass
class ModelCheckpointConfig(CallbackConfig):
    """When and what to keep.

    ``monitor``: a validation metric (``val/acc``) or a train epoch metric (``train/loss``); None keeps the
    most recent checkpoints. A checkpoint is considered at the end of every ``every_n_epochs``-th epoch
    (0: never) and every ``every_n_train_steps`` steps (0 or null: never). With a monitor, step-triggered
    checkpoints have no score and are kept only as the last one (``save_last``).
    ``save_optimizer_state: false`` writes weights only: smaller, but training cannot resume from it.
    """

    monitor: Optional[str] = None
    mode: str = "min"
    save_top_k: int = 1
    save_last: bool = False
    every_n_train_steps: Optional[int] = None
    save_optimizer_state: bool = True

    def __post_init__(self):
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode: must be 'min' or 'max', got {self.mode!r}")
        if self.save_top_k < -1:
            raise ValueError(f"save_top_k: must be >= -1 (-1 keeps all), got {self.save_top_k}")
        if self.every_n_epochs < 0:
            raise ValueError(f"every_n_epochs: must be >= 0, got {self.every_n_epochs}")
        if self.every_n_train_steps is not None and self.every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps: must be >= 0 or null, got {self.every_n_train_steps}")


@register
class ModelCheckpoint(Callback, CheckpointPolicy):
    """Lightning's ModelCheckpoint on orbax; ``best_model_path``/``best_model_score`` as in Lightning."""

    config: ModelCheckpointConfig

    def __init__(self, config: ModelCheckpointConfig, trainer=None):
        super().__init__(config, trainer)
        self.best_k: list[dict] = []  # {"step", "epoch", "score"}, best first
        self.last_step: int | None = None
        self._score: float | None = None
        self._dropped: list[int] = []
        self._prev_step = 0
        self._resumed = False
        self._scored = False

    # ----------------------------------------------------------------- public
    @property
    def save_optimizer_state(self) -> bool:
        return self.config.save_optimizer_state

    @property
    def dirpath(self) -> Path:
        return checkpoint_dir(self.trainer.log_dir)

    @property
    def best_model_path(self) -> str:
        return str(self.dirpath / str(self.best_k[0]["step"])) if self.best_k else ""

    @property
    def best_model_score(self) -> float | None:
        return self.best_k[0]["score"] if self.best_k and self.config.monitor else None

    @property
    def last_model_path(self) -> str:
        return str(self.dirpath / str(self.last_step)) if self.last_step is not None else ""

    # ----------------------------------------------------------------- hooks
    def on_training_start(self) -> None:
        self._prev_step = self.trainer.global_step
        existing = committed_steps(self.dirpath)
        if existing and not self._resumed:
            LOGGER.warning(
                "%s already holds checkpoints %s from an earlier run; steps this run reaches again are overwritten.",
                self.dirpath,
                existing,
            )

    @property
    def wants_step_end(self) -> bool:
        """Only step-based saving needs the per-step hook; epoch saving costs nothing per step."""
        return bool(self.config.every_n_train_steps)

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        n = self.config.every_n_train_steps
        if n and step // n > self._prev_step // n:
            self.trainer.checkpointer.request_save(self)
        self._prev_step = step

    def on_filtered_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        if self.config.every_n_epochs <= 0:
            return
        self.trainer.checkpointer.request_save(self)
        if self._monitors_train():
            self._score = float(train_metrics[self._train_key(train_metrics)])

    def on_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        monitor = self.config.monitor
        if monitor and not self._monitors_train() and monitor not in eval_metrics:
            raise missing_metric("ModelCheckpoint.monitor", monitor, eval_metrics, "validation metric")
        super().on_validation_epoch_end(eval_metrics, epoch_idx)

    def on_filtered_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        if self.config.monitor and not self._monitors_train() and self.trainer.checkpointer.is_requested(self):
            self._score = float(eval_metrics[self.config.monitor])

    def on_training_end(self) -> None:
        if self.config.monitor and not self._scored and self.config.save_top_k != 0:
            LOGGER.warning("ModelCheckpoint: %r was never computed; no best checkpoint was kept.", self.config.monitor)

    # ----------------------------------------------------------------- CheckpointPolicy
    def decide(self, step: int) -> bool:
        """Update the bookkeeping for a checkpoint at ``step``; False if it is not worth writing."""
        score, self._score = self._score, None
        if self.config.monitor is None:
            score = float(step)
        before, wanted = self.kept_steps(), False
        k = self.config.save_top_k
        if score is not None and k != 0:
            self._scored = True
            entry = {"step": step, "epoch": self.trainer.current_epoch, "score": score}
            ranked = sorted([e for e in self.best_k if e["step"] != step] + [entry], key=self._rank)
            self.best_k = ranked if k < 0 else ranked[:k]
            wanted = entry in self.best_k
        if self.config.save_last:
            self.last_step, wanted = step, True
        if wanted:
            self._dropped += sorted(before - self.kept_steps())
        return wanted

    def kept_steps(self) -> set[int]:
        return {e["step"] for e in self.best_k} | ({self.last_step} if self.last_step is not None else set())

    def pop_dropped(self) -> list[int]:
        dropped, self._dropped = self._dropped, []
        return dropped

    def best_step(self) -> int | None:
        return self.best_k[0]["step"] if self.best_k and self.config.monitor else None

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "monitor": self.config.monitor,
            "mode": self.config.mode,
            "best_k": [dict(e) for e in self.best_k],
            "last_step": self.last_step,
            "scored": self._scored,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the bookkeeping; entries whose directory is gone (removed by an abandoned run) are dropped, and
        so is anything that is not a step number: a checkpoint's contents never become a path."""
        self._resumed = True
        entries = [e for e in state.get("best_k", []) if isinstance(e, dict) and _is_step(e.get("step"))]
        if (state.get("monitor"), state.get("mode")) != (self.config.monitor, self.config.mode):
            LOGGER.warning("ModelCheckpoint: monitor or mode changed since the checkpoint; earlier scores are ignored.")
            entries = []
        self.best_k = [dict(e) for e in entries if (self.dirpath / str(e["step"])).is_dir()]
        last = state.get("last_step")
        self.last_step = last if _is_step(last) and (self.dirpath / str(last)).is_dir() else None
        self._scored = bool(state.get("scored", False))

    # ----------------------------------------------------------------- helpers
    def _monitors_train(self) -> bool:
        return bool(self.config.monitor) and keys.is_train_key(self.config.monitor)

    def _train_key(self, train_metrics: dict) -> str:
        found = keys.monitored(self.config.monitor, train_metrics)
        if found is None:
            raise missing_metric("ModelCheckpoint.monitor", self.config.monitor, train_metrics, "train epoch metric")
        return found

    def _rank(self, entry: dict) -> tuple[float, int]:
        """Sort key, best first; a NaN score ranks last and ties keep the earlier checkpoint. Without a
        monitor the score is the step: the most recent ranks first."""
        score = entry["score"]
        if self.config.monitor is None:
            return (-score, 0)
        if math.isnan(score):
            return (math.inf, entry["step"])
        return (score if self.config.mode == "min" else -score, entry["step"])


def _is_step(value) -> bool:
    """A step number (bool, strings and paths are not)."""
    return type(value) is int and value >= 0  # pylint: disable=unidiomatic-typecheck  (bool is an int)
