"""``ReadOnlyAfter``: a callback that remounts a bind-mounted folder read-only at the end of one validation epoch,
so a test can make the checkpoints folder read-only in the middle of a real run (listed under ``imports:`` of a test
config; tests/ is on the subprocess's PYTHONPATH; needs root)."""

import subprocess
import time
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
        for _ in range(100):  # "busy" while a write into the folder (the last save's commit) is under way
            done = subprocess.run(["mount", "-o", "remount,bind,ro", self.config.path], capture_output=True, text=True)
            if done.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"mount -o remount,bind,ro {self.config.path} failed: {done.stderr}")
