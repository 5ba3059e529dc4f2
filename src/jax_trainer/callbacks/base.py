"""Callback base: Lightning's hook vocabulary, with epoch filtering, resumable state and finalisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compoconf import ConfigInterface, RegistrableConfigInterface, register_interface

from jax_trainer.errors import InputError


@register_interface
class CallbackInterface(RegistrableConfigInterface):
    """Registry of callbacks; YAML names them by ``class_name`` under ``trainer.callbacks``."""


@dataclass
class CallbackConfig(ConfigInterface):
    every_n_epochs: int = 1


LIGHTNING_NAMES = {
    "on_train_start": "on_training_start",
    "on_train_end": "on_training_end",
    "on_train_epoch_start": "on_training_epoch_start",
    "on_train_epoch_end": "on_training_epoch_end",
    "on_train_batch_end": "on_train_step_end",
}
"""Lightning's hook names, accepted as other names of the same hook points (same arguments as ours)."""


class Callback(CallbackInterface):
    """Base class. Override the hooks you need; ``on_filtered_*`` run every ``every_n_epochs`` epochs.

    Hook names are the original jax_trainer's (``on_training_epoch_end``); Lightning's (``on_train_epoch_end``,
    see :data:`LIGHTNING_NAMES`) name the same hook points. ``on_train_step_end`` is only called for callbacks that
    override it, so an idle callback costs nothing per step; an override must not fetch device values unless it
    needs them.
    """

    config: CallbackConfig

    def __init_subclass__(cls, **kwargs):
        """A hook defined under Lightning's name becomes the hook of that point (unless ours is defined too)."""
        super().__init_subclass__(**kwargs)
        for lightning, own in LIGHTNING_NAMES.items():
            if lightning in cls.__dict__ and own not in cls.__dict__:
                setattr(cls, own, cls.__dict__[lightning])

    def __init__(self, config: CallbackConfig, trainer=None, data_module: Any = None):
        """``trainer``: the trainer whose hooks call this callback. ``data_module`` is accepted so callbacks written
        for the original jax_trainer (which passed its data module) construct unchanged; this trainer passes none."""
        self.config = config
        self.trainer = trainer
        self.data_module = data_module

    def _due(self, epoch_idx: int) -> bool:
        return epoch_idx % max(1, self.config.every_n_epochs) == 0

    def on_training_start(self) -> None:
        """Once, before the first train epoch (after a resume: before the first resumed one). Lightning:
        ``on_train_start``."""

    def on_training_end(self) -> None:
        """Once, after the last epoch and the test (not after a failure or an interrupt: see :meth:`finalize`).
        Lightning: ``on_train_end``."""

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        """Before train epoch ``epoch_idx`` (1-based). Lightning: ``on_train_epoch_start``."""

    def on_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        """After train epoch ``epoch_idx``; calls :meth:`on_filtered_training_epoch_end` every ``every_n_epochs``.
        Lightning: ``on_train_epoch_end``. ``train_metrics`` is a read-only mapping fetched from the device on first
        read: a callback that does not read it lets the next epoch start without waiting for the device."""
        if self._due(epoch_idx):
            self.on_filtered_training_epoch_end(train_metrics, epoch_idx)

    def on_filtered_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        """:meth:`on_training_epoch_end` of the epochs divisible by ``every_n_epochs``: override this for periodic
        work."""

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        """After every dispatched train step (``step`` is the global step after it), only for callbacks that
        override it (:attr:`wants_step_end`). Lightning: ``on_train_batch_end``."""

    def on_validation_epoch_start(self, epoch_idx: int) -> None:
        """Before validating after train epoch ``epoch_idx``."""

    def on_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        """After validating (``eval_metrics``: ``{"val/...": value}``); calls
        :meth:`on_filtered_validation_epoch_end` every ``every_n_epochs``."""
        if self._due(epoch_idx):
            self.on_filtered_validation_epoch_end(eval_metrics, epoch_idx)

    def on_filtered_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        """:meth:`on_validation_epoch_end` of the epochs divisible by ``every_n_epochs``."""

    def on_test_epoch_start(self, epoch_idx: int) -> None:
        """Before the test loop (after training, or from ``test_model``)."""

    def on_test_epoch_end(self, test_metrics: dict, epoch_idx: int) -> None:
        """After the test loop (``test_metrics``: ``{"test/...": value}``); calls
        :meth:`on_filtered_test_epoch_end` every time (a test is never periodic)."""
        self.on_filtered_test_epoch_end(test_metrics, epoch_idx)

    def on_filtered_test_epoch_end(self, test_metrics: dict, epoch_idx: int) -> None:
        """:meth:`on_test_epoch_end`, for symmetry with the other filtered hooks."""

    def state_dict(self) -> dict:
        """JSON-serialisable state restored on resume (counters, best scores)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, on resume (before ``on_training_start``)."""

    def finalize(self, status: str) -> None:
        """Called once at the end of training with ``"success"``, ``"failed"`` or ``"interrupted"``."""

    @property
    def wants_step_end(self) -> bool:
        """Whether this callback overrides :meth:`on_train_step_end` (the loop calls only those per step)."""
        return type(self).on_train_step_end is not Callback.on_train_step_end


def missing_metric(owner: str, key: str, metrics: dict, kind: str = "metric") -> InputError:
    """The error for a monitored ``key`` absent from ``metrics``, listing the scalar metrics there are."""
    available = sorted(k for k, v in metrics.items() if isinstance(v, float))
    return InputError(f"{owner}: {key!r} is not a {kind}; available: {available}.")
