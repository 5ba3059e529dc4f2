"""``SlowSteps``: a callback that sleeps after every train step, so a test can signal or race a real run while it
is training (listed under ``imports:`` of a test config; tests/ is on the subprocess's PYTHONPATH)."""

import time
from dataclasses import dataclass

from compoconf import register

from jax_trainer.callbacks import Callback, CallbackConfig


@dataclass
class SlowStepsConfig(CallbackConfig):
    seconds: float = 0.02


@register
class SlowSteps(Callback):
    config: SlowStepsConfig

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        time.sleep(self.config.seconds)
