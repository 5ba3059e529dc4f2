"""``SlowSteps``: a callback that sleeps after every train step, so a test can signal or race a real run while it
is training (listed under ``imports:`` of a test config; tests/ is on the subprocess's PYTHONPATH)."""

import time
from dataclasses import dataclass

from compoconf import register

from jax_trainer.callbacks import Callback, CallbackConfig


@dataclass
class SlowStepsConfig(CallbackConfig):
    seconds: float = 0.02
    from_step: int = 0  # the first step that sleeps


@register
class SlowSteps(Callback):
    config: SlowStepsConfig

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        if step >= self.config.from_step:
            time.sleep(self.config.seconds)


@dataclass
class OrbaxPreemptionCallsConfig(CallbackConfig):
    pass


@register
class OrbaxPreemptionCalls(Callback):
    """After every train step, what orbax's ``CheckpointManager.save`` and its finalize thread do: ask jax's
    preemption sync point with the step number (``orbax.checkpoint.multihost.reached_preemption``). A stop protocol
    built on that counter loses its place when a notice comes in between (the step is one below its own count)."""

    config: OrbaxPreemptionCallsConfig

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        from orbax.checkpoint import multihost  # pylint: disable=import-outside-toplevel

        multihost.reached_preemption(step)
