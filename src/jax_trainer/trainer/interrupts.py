"""Stopping on SIGTERM and SIGINT: what SLURM, Kubernetes and cloud preemption send, and Ctrl-C.

While training, the first signal only sets a flag; the loop stops at the next step boundary (the dispatched step
finishes), checkpoints the exact position when the run checkpoints, flushes its logs, finalizes its callbacks and
raises :class:`~jax_trainer.errors.Interrupted`. A second signal aborts at once with the signal's default action.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalFlag:
    """A context manager: inside it (in the main thread, where Python delivers signals) SIGTERM and SIGINT set
    ``signum`` instead of ending the process; a second signal ends it at once. Elsewhere it does nothing."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "SignalFlag":
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:  # pylint: disable=unused-argument
        if self.signum is not None:  # the second signal: abort now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self.signum = signum
