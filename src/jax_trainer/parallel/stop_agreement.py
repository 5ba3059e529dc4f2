"""Several processes stopping at one step: when any of them gets SIGTERM or SIGINT, all agree where to stop.

Every process counts the stop points of its training loop; the loop is the same in every process, so the counts
agree. The process that got the signal posts a notice to every process through jax's coordination service (its
key-value store). A watcher thread in every process waits for its notice; when it comes, the watcher takes the lock
that each stop point takes, posts its count, waits at a barrier until every process has posted, and sets the stop at
one past the largest count. No process can have passed that point: each is held at its next stop point until the
agreement is made, and then runs on to it. The watcher is not a daemon thread (one ended by the interpreter inside a
call into jax's runtime aborts the process at exit); closing the agreement wakes it.

jax's preemption sync manager (``multihost_utils.reached_preemption_sync_point``) follows the same protocol, but its
counter is shared: orbax's ``CheckpointManager.save`` passes its own step numbers to it, from the training thread
and from the thread that finalizes a save. A notice that came while the counter held orbax's number agreed on a point
the loop had already passed, and the run never stopped. The counter here is the loop's alone.
"""

from __future__ import annotations

import logging
import threading

import jax

_WAIT_MS = 60_000  # one wait for the notice; the watcher waits again until it comes or the agreement is closed
_AGREE_MS = 30_000  # how long the processes wait for each other's counts
_CLOSED = "closed"

_log = logging.getLogger(__name__)


class StopAgreement:
    """The agreement of one training loop across processes. ``session`` names it in the coordination service;
    every process must use the same name, and each loop a new one (the service keeps its keys)."""

    def __init__(self, client, session: str):
        self._client = client
        self._prefix = f"jax_trainer/stop/{session}"
        self._lock = threading.Lock()
        self._points = 0
        self._stop_at: int | None = None
        self.signum: int | None = None  # the signal of the notice, once the stop point is agreed
        self._watcher = threading.Thread(target=self._watch, name="jax_trainer-stop-agreement")
        self._watcher.start()

    def notify(self, signum: int) -> None:
        """Post the notice that this process got ``signum`` to every process; their watchers take it from there."""
        for index in range(jax.process_count()):
            self._client.key_value_set(self._wake_key(index), str(signum), allow_overwrite=True)

    def reached(self) -> bool:
        """Called at each stop point, in the same order in every process: whether all processes stop here. A lock
        and a comparison; no collective."""
        with self._lock:
            self._points += 1
            return self._stop_at is not None and self._points >= self._stop_at

    def close(self) -> None:
        """Stop watching: the loop is over. Wakes the watcher (which ends at once, unless a notice came first and it
        is agreeing with the others) and waits for it."""
        try:
            self._client.key_value_set(self._wake_key(jax.process_index()), _CLOSED, allow_overwrite=True)
        except jax.errors.JaxRuntimeError:  # the runtime is gone (the loop failed with it): so is the watcher's wait
            pass
        self._watcher.join()

    def _wake_key(self, index: int) -> str:
        return f"{self._prefix}/wake/{index}"

    def _watch(self) -> None:
        notice = None
        while notice is None:
            try:
                notice = self._client.blocking_key_value_get(self._wake_key(jax.process_index()), _WAIT_MS)
            except jax.errors.JaxRuntimeError as err:
                if "DEADLINE_EXCEEDED" not in str(err):  # the runtime is shutting down
                    return
        if notice == _CLOSED:
            return
        with self._lock:
            try:
                self._client.key_value_set(f"{self._prefix}/points/{jax.process_index()}", str(self._points))
                self._client.wait_at_barrier(f"{self._prefix}/agreed", _AGREE_MS)
                counts = [int(value) for _, value in self._client.key_value_dir_get(f"{self._prefix}/points/")]
            except jax.errors.JaxRuntimeError as err:  # a process gone or finished: no common stop point
                _log.warning("A stop signal reached this process, but the processes could not agree on a step "
                             "to stop at (%s); training goes on.", err)
                return
            self._stop_at = max(counts) + 1
            self.signum = int(notice)
