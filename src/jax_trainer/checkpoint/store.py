"""Where checkpoints live and how they are written: ``<log_dir>/checkpoints/<step>/`` through orbax.

A step directory holds three orbax items: ``state`` (the backend's named state tree), ``meta`` (JSON: what the
run had done, see ``run_state.py``) and, inside an epoch, ``loop`` (the epoch's metric accumulators). orbax writes
each save into a temporary directory and renames it when complete, so a step directory that exists is whole.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import threading
import time
import traceback
from pathlib import Path

from jax_trainer.checkpoint.errors import CheckpointError, CheckpointWriteError
from jax_trainer.checkpoint.integrity import checksums
from jax_trainer.checkpoint.trees import to_storage
from jax_trainer.parallel.runtime import barrier, is_main_process

CHECKPOINT_DIR = "checkpoints"
STATE, LOOP, META = "state", "loop", "meta"
TRASH_SUFFIX = ".deleting"
MODEL = "model"
"""The key under which every backend's state tree holds the model (weights, mutable collections)."""


class _OrbaxThreadErrors(logging.Filter):
    """Drops the error reports orbax logs about a store's own checkpoints (each with a traceback), from its save
    threads or from inside a store call: the same failure reaches the store as an exception and is raised once (as
    a CheckpointWriteError, or as it is). Errors about anything else pass."""

    def __init__(self):
        super().__init__()
        self.directories: set[str] = set()
        self.threads: set[int] = set()  # threads inside a store call: its failure is raised to the caller

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        if record.thread in self.threads or str(record.msg).startswith("[process="):  # orbax's thread reports
            return False
        text = record.getMessage()
        return not any(directory in text for directory in self.directories)


_ORBAX_LOG_FILTER = _OrbaxThreadErrors()


class _FailedSaveLeftovers(logging.Filter):
    """What a failed save's other writes report after the failure, dropped: the failure itself reaches the store and
    is raised once. orbax runs each save in an event loop of its own and closes it when the first write fails (a
    full disk); the other writes still complete afterwards. tensorstore reports each result it can no longer
    deliver (``loop.call_soon_threadsafe`` on the closed loop) to ``sys.unraisablehook`` as ``RuntimeError: Event
    loop is closed`` with a traceback (a save that succeeds awaits all its writes, so nothing else reports this);
    and asyncio logs each abandoned write's OSError as "Future exception was never retrieved" (dropped once a store
    failed). Every other report goes where it went before."""

    def __init__(self):
        super().__init__()
        self.failed = False
        self.previous = None

    def install(self) -> None:
        if self.previous is None:
            self.previous, sys.unraisablehook = sys.unraisablehook, self
            logging.getLogger("asyncio").addFilter(self)

    def __call__(self, unraisable) -> None:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            if any(frame.name == "call_soon_threadsafe" for frame in traceback.extract_tb(unraisable.exc_traceback)):
                return
        self.previous(unraisable)

    def filter(self, record: logging.LogRecord) -> bool:
        abandoned = str(record.msg).startswith("Future exception was never retrieved")
        return not (self.failed and abandoned and record.exc_info and isinstance(record.exc_info[1], OSError))


_LEFTOVERS = _FailedSaveLeftovers()


def ocp():
    """orbax.checkpoint, imported on first use (heavy; only checkpoint I/O needs it)."""
    import orbax.checkpoint  # pylint: disable=import-outside-toplevel

    return orbax.checkpoint


# ----------------------------------------------------------------------------- locating checkpoints
def checkpoint_dir(log_dir: str | Path) -> Path:
    """The checkpoints folder of a run directory."""
    return Path(log_dir) / CHECKPOINT_DIR


def committed_steps(directory: str | Path) -> list[int]:
    """Steps of the complete checkpoints in ``directory`` (orbax's temporary directories excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def newest(log_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, None if it has none."""
    steps = committed_steps(checkpoint_dir(log_dir))
    return checkpoint_dir(log_dir) / str(steps[-1]) if steps else None


def locate(path: str | Path) -> Path:
    """A checkpoint directory from a step directory, a run directory or a ``checkpoints`` directory (both: their
    newest step)."""
    path = Path(path)
    if path.name.isdigit() and (path / META).is_dir():
        return path
    for folder in (checkpoint_dir(path), path):
        steps = committed_steps(folder)
        if steps:
            return folder / str(steps[-1])
    if path.name.isdigit() and path.with_name(path.name + ".orbax-checkpoint-tmp").is_dir():
        raise CheckpointError(f"Checkpoint {path} was never completed (its save was interrupted).")
    raise CheckpointError(f"No checkpoint at {path}: expected a checkpoints/<step> directory or a run directory.")


# ----------------------------------------------------------------------------- the store
class CheckpointStore:
    """An orbax CheckpointManager over one ``checkpoints`` directory: async saves, deferred deletes.

    Retention is decided by the checkpoint policies, so orbax keeps everything it is given. ``save`` returns once
    the arrays are copied to the host; orbax waits for the previous save itself. A deleted step is removed only
    after the save that replaced it is committed, and by an atomic rename before its files go, so whatever moment a
    kill hits, the newest complete step directory is a whole checkpoint (a kill mid-delete leaves a ``*.deleting``
    directory, purged on the next start).
    """

    def __init__(self, directory: str | Path, read_only: bool = False):
        self.directory = Path(directory).absolute()  # orbax wants absolute paths
        self.read_only = read_only
        options = ocp().CheckpointManagerOptions(  # orbax's own read_only mode only adds warnings: readers never save
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            # Directories made inside save(): a folder that cannot be written fails there, at once. Made in the
            # background, the failure leaves orbax's writer threads waiting 300 s for a creation signal never sent.
            async_options=ocp().AsyncOptions(create_directories_asynchronously=False),
        )
        handlers = {
            STATE: ocp().StandardCheckpointHandler(),
            LOOP: ocp().StandardCheckpointHandler(),
            META: ocp().JsonCheckpointHandler(),
        }
        self._owner = not read_only and is_main_process()  # the process that deletes; orbax writes with every process
        if self._owner:
            for trash in self.directory.glob(f"*{TRASH_SUFFIX}"):
                shutil.rmtree(trash, ignore_errors=True)
        logging.getLogger("absl").addFilter(_ORBAX_LOG_FILTER)  # once: filters are a set
        _ORBAX_LOG_FILTER.directories.add(str(self.directory))
        _LEFTOVERS.install()  # once
        self._failed: CheckpointWriteError | None = None
        self._step: int | None = None  # the step being written
        self._pending: list[int] = []
        self._cleaners: list[threading.Thread] = []
        manager = ocp().CheckpointManager
        self.manager = self._guarded(None, manager, self.directory, item_handlers=handlers, options=options)

    def save(self, step: int, state: dict, meta: dict, loop: dict | None = None) -> None:
        """Write ``step`` in the background: the state tree, its metadata and (inside an epoch) the loop arrays; the
        metadata gets the checksum of every array (``integrity.py``), verified when the step is read back."""
        meta = {**meta, "checksums": {STATE: checksums(state), **({LOOP: checksums(loop)} if loop else {})}}
        if (self.directory / str(step)).exists():  # a step re-reached after a resume replaces the old one
            self.remove(step)
        args = ocp().args
        items = {STATE: args.StandardSave(to_storage(state)), META: args.JsonSave(meta)}
        if loop:
            items[LOOP] = args.StandardSave(to_storage(loop))
        pending, self._pending = self._pending, []
        self._guarded(step, self.manager.save, step, args=args.Composite(**items), force=True)  # waits for the last
        self._step = step
        for old in pending:
            self._discard(old)

    def delete(self, step: int) -> None:
        """Remove ``step`` once the newest save is committed (at the next save or ``wait``)."""
        self._pending.append(step)

    def remove(self, step: int) -> None:
        """Remove ``step`` now (no save may be in flight)."""
        self.manager.wait_until_finished()
        self._discard(step)
        barrier(f"jax_trainer-remove-{step}")  # every process calls it; process 0 deletes, the others then reload
        self.manager.reload()

    def wait(self) -> None:
        """Block until every save is committed and every deletion done."""
        self._guarded(self._step, self.manager.wait_until_finished)
        pending, self._pending = self._pending, []
        for old in pending:
            self._discard(old)
        for cleaner in self._cleaners:
            cleaner.join()
        self._cleaners = []

    def close(self) -> None:
        """Wait, then release orbax's manager (its threads). A write failure already raised is not raised again. No
        save of this store is in flight afterwards, so a temporary folder left is a failed write's, and is removed (a
        reader's store removes nothing: the folder may be a running writer's)."""
        failed_before = self._failed is not None
        try:
            self.wait()
        except CheckpointWriteError:
            if not failed_before:
                raise
        finally:
            try:
                self._guarded(self._step, self.manager.close)  # orbax re-raises a failed background write here
            except CheckpointWriteError:
                if not failed_before:
                    raise
            finally:
                if self._owner:
                    self._remove_unfinished()

    def _guarded(self, step: int | None, call, *args, **kwargs):
        """``call(*args, **kwargs)``; an orbax or tensorstore failure of the file system becomes a
        CheckpointWriteError naming the checkpoint and the cause (raised once; later calls re-raise nothing new)."""
        thread = threading.get_ident()
        _ORBAX_LOG_FILTER.threads.add(thread)
        try:
            return call(*args, **kwargs)
        except Exception as err:  # orbax and tensorstore report file-system failures as ValueError and others
            if self._failed is not None:
                raise self._failed from None
            found = re.search(r"os_error_code='(\d+)'", str(err))
            code = int(found.group(1)) if found else getattr(err, "errno", None)
            if code is None:
                raise
            where = self.directory / str(step) if step is not None else self.directory
            self._failed = CheckpointWriteError(code, f"cannot write checkpoint {where}: {os.strerror(code)}")
            _LEFTOVERS.failed = True
            raise self._failed from err
        finally:
            _ORBAX_LOG_FILTER.threads.discard(thread)

    def _remove_unfinished(self) -> None:
        """Remove the temporary folders of failed writes. tensorstore's writes of a failed save can still land after
        orbax reports the failure (and recreate folders), so this repeats until the folder stays clean a moment."""
        deadline, quiet = time.monotonic() + 10.0, 0
        while quiet < 3 and time.monotonic() < deadline:
            unfinished = list(self.directory.glob("*.orbax-checkpoint-tmp"))
            if not unfinished and self._failed is None:
                return  # the usual close: nothing failed, nothing to wait for
            quiet = 0 if unfinished else quiet + 1
            for tmp in unfinished:
                shutil.rmtree(tmp, ignore_errors=True)
            time.sleep(0.1)

    def _discard(self, step: int) -> None:
        path = self.directory / str(step)
        if not self._owner or not path.is_dir():
            return
        trash = path.with_name(path.name + TRASH_SUFFIX)
        shutil.rmtree(trash, ignore_errors=True)
        path.rename(trash)
        cleaner = threading.Thread(target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True}, daemon=True)
        cleaner.start()
        self._cleaners.append(cleaner)
