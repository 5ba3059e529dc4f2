"""Files a run writes while it runs: replaced whole, so a reader (or a crash) never sees half of one; and the lock
that keeps one run per run directory."""

import contextlib
import fcntl
import os
import tempfile

from jax_trainer.errors import InputError


@contextlib.contextmanager
def naming(path: str | os.PathLike):
    """Inside it, an OSError names ``path`` (a failed write to an open file reports only the cause)."""
    try:
        yield
    except OSError as err:
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror or str(err), os.fspath(path)) from err
        raise


def probe_writable(directory: str | os.PathLike) -> None:
    """Create ``directory`` if missing and a file in it, then remove the file: a folder the run must write (read-only,
    no permission, a file in its place) fails here with an OSError naming the folder, before anything is compiled,
    rather than at the first checkpoint."""
    directory = os.fspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), directory) from err


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``<path>.tmp``, then rename it over ``path`` in one step.

    Plain ``open``/``os.replace`` on strings: the epoch metrics file is written after every epoch, and
    pathlib's object arithmetic costs as much as the system calls.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with naming(path), open(tmp, "w", encoding="utf-8", newline="") as handle:  # text is written as given
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):  # a full disk or a signal: the old file stays, the half-written one goes
            os.remove(tmp)
        raise


LOCK_FILE = ".lock"
_HELD: dict[str, list] = {}  # lock file path -> [file descriptor, holders in this process]


class RunDirLockedError(InputError):
    """Another process is writing into the same run directory."""


class RunDirLock:
    """An OS lock (``fcntl.flock``) on ``<log_dir>/.lock`` while a run writes there, so two runs never mix their files.

    A second process fails at once, naming the holder's PID (written into the file). The OS drops the lock when its
    holder dies, so the lock of a killed run never blocks the next. Within one process the lock is shared (counted).
    """

    def __init__(self, log_dir: str | os.PathLike):
        self.log_dir = os.fspath(log_dir)
        self.path = os.path.realpath(os.path.join(self.log_dir, LOCK_FILE))

    def acquire(self) -> None:
        """Take the lock, or raise RunDirLockedError naming the process that holds it."""
        if self.path in _HELD:
            _HELD[self.path][1] += 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirLockedError(
                f"{self.log_dir} is in use by another run (process {holder}); give this run its own "
                "trainer.logger.log_dir, or wait for that one to end."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[self.path] = [fd, 1]

    def release(self) -> None:
        """Give the lock back (the file stays: removing it would race with a run taking it)."""
        held = _HELD.get(self.path)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.path]
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])
