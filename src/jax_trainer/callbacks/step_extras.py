"""Step extras: a callback's own computation folded into every compiled train step.

A callback that needs a per-step quantity (a gradient-norm EMA, a spike record) cannot fetch it from the
device each step without stalling the pipeline. A :class:`StepExtra` callback instead provides a pure,
jittable ``update_step_state(state, info)`` that the trainer folds into the step's carry; the state stays
on device for the whole epoch and is handed back to the host once, at the end of each train epoch,
before ``on_training_epoch_end``. Between epochs the host copy is the truth: ``init_step_state`` rebuilds
the device state from it at the start of each epoch (and after a resume, from ``load_state_dict``).
"""

from __future__ import annotations

import abc
from typing import Any, Callable, NamedTuple

import jax

PyTree = Any


class StepInfo(NamedTuple):
    """One train step as a step extra sees it (traced): ``step`` is the global step after the update (the step the
    logger uses), ``values`` the step's metric values keyed as logged (``train/loss``)."""

    step: jax.Array
    loss: jax.Array
    grads: Any
    values: dict


class StepExtra(abc.ABC):
    """Mixin for a :class:`~jax_trainer.callbacks.base.Callback` that keeps on-device state per train step."""

    @abc.abstractmethod
    def init_step_state(self) -> PyTree:
        """State (host or device arrays, fixed shapes and dtypes) at the start of a train epoch."""

    @abc.abstractmethod
    def update_step_state(self, state: PyTree, info) -> PyTree:
        """Traced inside the step: fold one :class:`StepInfo` into ``state``."""

    @abc.abstractmethod
    def receive_step_state(self, state: PyTree) -> None:
        """The epoch's final state as numpy arrays, before ``on_training_epoch_end``."""


class StepExtras:
    """The step-extra callbacks of a trainer, keyed by position so the carry is a plain dict of states."""

    def __init__(self, callbacks):
        self.callbacks = [cb for cb in callbacks if isinstance(cb, StepExtra)]

    def init(self) -> dict[str, PyTree]:
        """Every step extra's state at the start of a train epoch, keyed by position."""
        return {str(i): cb.init_step_state() for i, cb in enumerate(self.callbacks)}

    @property
    def update(self) -> Callable | None:
        """``(states, info) -> states`` for the compiled step, or None when no callback needs one."""
        if not self.callbacks:
            return None

        def update(states, info):
            return {str(i): cb.update_step_state(states[str(i)], info) for i, cb in enumerate(self.callbacks)}

        return update

    def hand_back(self, states: dict[str, PyTree]) -> None:
        """One fetch per epoch: give every callback its final state."""
        if not self.callbacks:
            return
        host = jax.device_get(states)
        for i, cb in enumerate(self.callbacks):
            cb.receive_step_state(host[str(i)])
