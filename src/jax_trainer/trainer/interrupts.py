"""Stopping on SIGTERM and SIGINT: what SLURM, Kubernetes and cloud preemption send, and Ctrl-C.

While training, the first signal only sets a flag; the loop stops at the next step boundary (the dispatched step
finishes), checkpoints the exact position when the run checkpoints, flushes its logs, finalizes its callbacks and
raises :class:`~jax_trainer.errors.Interrupted`. A second signal aborts at once with the signal's default action.

With several processes (``trainer.distributed``) every process must stop at the same step, since they write the
interrupt checkpoint together and each step's collectives need all of them. A signal is then a preemption notice for
jax's preemption sync manager (``multihost_utils.reached_preemption_sync_point``): jax catches SIGTERM itself
(SIGINT is passed on to it as a SIGTERM), tells every process through the coordination service, and agrees in the
background on the step after the furthest process's; each stop point asks, with a local check (no collective), whether
it is that step. A second SIGTERM is jax's then, and does not abort (a second SIGINT does).
"""

from __future__ import annotations

import os
import signal
import threading

import jax

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _preemption_sync():
    """jax's preemption sync point check when several processes run with jax's preemption service, else None."""
    if jax.process_count() == 1:
        return None
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    try:
        multihost_utils.reached_preemption_sync_point(0)  # raises where the service is switched off
    except RuntimeError:
        return None
    return multihost_utils.reached_preemption_sync_point


class SignalFlag:
    """A context manager: inside it (in the main thread, where Python delivers signals) SIGTERM and SIGINT set
    ``signum`` instead of ending the process; a second signal ends it at once. Elsewhere it does nothing. Ask
    :meth:`stop_requested` at every stop point: with several processes it tells when all stop together."""

    def __init__(self):
        self.signum: int | None = None
        self._received: int | None = None  # this process's own signal (its exit code), with several processes
        self._sync = None
        self._points = 0
        self._previous: dict = {}

    def __enter__(self) -> "SignalFlag":
        self.signum = self._received = None
        self._sync, self._points = _preemption_sync(), 0
        if threading.current_thread() is threading.main_thread():
            signals = (signal.SIGINT,) if self._sync is not None else SIGNALS  # SIGTERM stays jax's
            self._previous = {sig: signal.signal(sig, self._handle) for sig in signals}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def stop_requested(self) -> bool:
        """Whether to stop here. One process: whether a signal came. Several: whether this is the step all agreed to
        stop at; every process asks at the same points of the same loop, so the points count alike everywhere."""
        if self.signum is not None or self._sync is None:
            return self.signum is not None
        self._points += 1
        if self._sync(self._points):
            self.signum = self._received or signal.SIGTERM
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:  # pylint: disable=unused-argument
        if self._received is not None or (self._sync is None and self.signum is not None):  # the second: abort now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        if self._sync is None:
            self.signum = signum
        else:  # a preemption notice for every process: jax's SIGTERM handler takes it from here
            self._received = signum
            signal.raise_signal(signal.SIGTERM)
