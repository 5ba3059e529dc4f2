"""Stopping on SIGTERM and SIGINT: what SLURM, Kubernetes and cloud preemption send, and Ctrl-C.

While training, the first signal only sets a flag; the loop stops at the next step boundary (the dispatched step
finishes), checkpoints the exact position when the run checkpoints, flushes its logs, finalizes its callbacks and
raises :class:`~jax_trainer.errors.Interrupted`. A second signal aborts at once with the signal's default action.

With several processes (``trainer.distributed``) every process must stop at the same step, since they write the
interrupt checkpoint together and each step's collectives need all of them. A signal to any one of them is then a
notice to all, and they agree on the stop point (``parallel/stop_agreement.py``); each stop point asks with a lock
and a comparison, no collective.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading

import jax

from jax_trainer.parallel.runtime import coordination_client
from jax_trainer.parallel.stop_agreement import StopAgreement

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_LOOPS = itertools.count()  # names each loop's agreement; every process enters the same loops in the same order


class SignalFlag:
    """A context manager: inside it (in the main thread, where Python delivers signals) SIGTERM and SIGINT set
    ``signum`` instead of ending the process; a second signal ends it at once. Elsewhere it does nothing. Ask
    :meth:`stop_requested` at every stop point: with several processes it tells when all stop together."""

    def __init__(self):
        self.signum: int | None = None
        self._received: int | None = None  # this process's own signal
        self._agreement: StopAgreement | None = None
        self._previous: dict = {}

    def __enter__(self) -> "SignalFlag":
        self.signum = self._received = None
        client = coordination_client()
        self._agreement = StopAgreement(client, str(next(_LOOPS))) if client is not None else None
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if self._agreement is not None:
            self._agreement.close()

    def stop_requested(self) -> bool:
        """Whether to stop here. One process: whether a signal came. Several: whether this is the point all agreed
        to stop at; every process asks at the same points of the same loop, so the points count alike everywhere."""
        if self.signum is None and self._agreement is not None and self._agreement.reached():
            self.signum = self._received or self._agreement.signum
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:  # pylint: disable=unused-argument
        if self._received is not None:  # the second: abort now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        self._received = signum
        if self._agreement is None:
            self.signum = signum
        else:
            try:
                self._agreement.notify(signum)
            except jax.errors.JaxRuntimeError:  # the runtime is gone: no other process to tell
                self.signum = signum
