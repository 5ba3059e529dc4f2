"""DisableGC: no cyclic garbage collection pauses during training."""

from __future__ import annotations

import gc
from dataclasses import dataclass

from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig


@dataclass
class DisableGCConfig(CallbackConfig):
    """Takes no options beyond the common callback fields."""


@register
class DisableGC(Callback):
    """Python's cyclic collector can pause the host for tens of milliseconds at arbitrary steps, which stalls
    the dispatch of compiled steps. Reference counting still frees almost everything, so the collector is
    switched off from ``on_training_start`` and, if it was on before, switched back on (with one full
    collection) when training finishes, fails or is interrupted."""

    config: DisableGCConfig

    def __init__(self, config: DisableGCConfig, trainer=None):
        super().__init__(config, trainer)
        self._was_enabled: bool | None = None

    def on_training_start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def finalize(self, status: str) -> None:
        if self._was_enabled:
            gc.enable()
        if self._was_enabled is not None:
            gc.collect()
        self._was_enabled = None
