"""``ReadOnlyAfter``: a callback that remounts a bind-mounted folder read-only at the end of one validation epoch,
so a test can make the checkpoints folder read-only in the middle of a real run (listed under ``imports:`` of a test
config; tests/ is on the subprocess's PYTHONPATH; needs root)."""

import subprocess
from dataclasses import dataclass

from compoconf import register

from jax_trainer.callbacks import Callback, CallbackConfig


@dataclass
class ReadOnlyAfterConfig(CallbackConfig):
    path: str = ""
    epoch: int = 1


@register
class ReadOnlyAfter(Callback):
    config: ReadOnlyAfterConfig

    def on_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        if epoch_idx != self.config.epoch:
            return
        # The earlier saves committed first (a save in flight keeps the mount busy): read-only between two saves.
        self.trainer.checkpointer.wait()
        subprocess.run(["mount", "-o", "remount,bind,ro", self.config.path], check=True, capture_output=True)
