"""A TensorBoard event file written in the caller's thread.

tensorboard's ``EventFileWriter`` hands every event to a writer thread through a small queue. In a training
loop each hand-off wakes that thread, which then takes the GIL (and, on a small machine, a core) from the
thread dispatching steps. Here events are framed (length and CRC, tensorboard's ``RecordWriter``) into a
buffered file that is written out at most every ``flush_secs`` and on ``flush``/``close``: the durability of
tensorboard's writer, without the thread.
"""

import itertools
import os
import socket
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from jax_trainer.files import naming

_file_ids = itertools.count()
_BUFFER_BYTES = 1 << 20


class EventFile:
    """``events.out.tfevents.<time>.<host>.<pid>.<n>`` in ``log_dir``, named as tensorboard's writer names it."""

    def __init__(self, log_dir: str, flush_secs: float):
        os.makedirs(log_dir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_file_ids)}"
        self.path = os.path.join(log_dir, name)
        self.flush_secs = flush_secs
        self._last_flush = time.monotonic()
        self._file = open(self.path, "wb", buffering=_BUFFER_BYTES)  # pylint: disable=consider-using-with
        self._records = RecordWriter(self._file)
        self.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def write(self, event: event_pb2.Event) -> None:
        with naming(self.path):
            self._records.write(event.SerializeToString())
        if time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        with naming(self.path):
            self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            with naming(self.path):
                self._file.close()
