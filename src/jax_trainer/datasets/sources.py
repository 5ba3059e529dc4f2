"""Row sources: arrays that stay on disk and are read a batch of rows at a time.

A :class:`RowSource` stands where a numpy array stands in a ``SupervisedBatch`` handed to ``NumpyLoader``: it has a
``shape`` and a ``dtype``, and ``source[rows]`` (an integer index array) returns those rows as a numpy array in the
stored dtype. Nothing else is read: a loader that gathers only its shard's rows reads only those bytes.

:class:`FileRows` reads fixed-size records of one file with ``os.pread`` (consecutive rows in one call), so reading
never maps the file into the process: what a run holds is the batches in flight, whatever the file's size, and the
bytes read sit in the OS page cache, which the kernel frees under pressure. ``pread`` keeps no file position, so
prefetch threads read one file at once. :class:`ConcatRows` joins sources (or arrays) along the rows;
``subset(rows)`` is a lazy selection of rows (a train/validation split) that reads nothing until gathered.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from jax_trainer.datasets.files import DataError

_OPENING = threading.Lock()


def _as_rows(rows, length: int, name: str) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or not (np.issubdtype(rows.dtype, np.integer) or rows.size == 0):
        raise TypeError(f"{name} is indexed by a 1-D integer array of rows, got {rows.dtype}{list(rows.shape)}")
    rows = rows.astype(np.int64, copy=False)
    if rows.size and (rows.min() < 0 or rows.max() >= length):
        raise IndexError(f"{name}: rows must lie in [0, {length}), got [{rows.min()}, {rows.max()}]")
    return rows


class RowSource:
    """The protocol of a row-addressable array: ``shape``, ``dtype``, ``len()``, ``source[rows]`` -> ndarray of
    ``(len(rows), *shape[1:])`` and ``subset(rows)`` -> a RowSource of those rows (nothing read)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, rows) -> np.ndarray:
        return self.read(_as_rows(rows, len(self), repr(self)))

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows ``rows`` (int64, in range, any order, repeats allowed) as a new array."""
        raise NotImplementedError

    def subset(self, rows) -> RowSource:
        """The rows ``rows`` of this source, read only when gathered."""
        return _Subset(self, _as_rows(rows, len(self), repr(self)))


class _Subset(RowSource):
    def __init__(self, base: RowSource, rows: np.ndarray):
        self.base, self.rows = base, rows
        self.shape, self.dtype = (len(rows), *base.shape[1:]), base.dtype

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.base.read(self.rows[rows])

    def subset(self, rows) -> RowSource:
        return _Subset(self.base, self.rows[_as_rows(rows, len(self), repr(self))])

    def __repr__(self) -> str:
        return f"{len(self)} rows of {self.base!r}"


class FileRows(RowSource):
    """``count`` records of ``record`` (a numpy dtype, possibly structured) stored back to back in ``path`` from
    byte ``offset``. A row is the record's ``field`` (the whole record when None) with its axes permuted by
    ``axes`` (e.g. CIFAR-10's channel-first planes served channel-last); rows come back in the stored dtype."""

    def __init__(
        self,
        path: Path,
        offset: int,
        count: int,
        record: np.dtype,
        field: Optional[str] = None,
        axes: Optional[Sequence[int]] = None,
    ):
        self._fd: Optional[int] = None
        self.path, self.offset, self.count, self.record = Path(path), int(offset), int(count), np.dtype(record)
        self.field, self.axes = field, None if axes is None else tuple(axes)
        size = self.path.stat().st_size
        if self.offset + self.count * self.record.itemsize > size:
            raise DataError(
                f"{self.path}: {self.count} records of {self.record.itemsize} bytes from byte {self.offset} need "
                f"{self.offset + self.count * self.record.itemsize} bytes, but the file has {size}"
            )
        row = np.empty(0, self.record)  # a subarray dtype (of a record or a field) expands into trailing axes
        row = row[field] if field else row
        item, trailing = row.dtype, row.shape[1:]
        if self.axes is not None:
            trailing = tuple(trailing[a] for a in self.axes)
        self.shape, self.dtype = (self.count, *trailing), item

    def __repr__(self) -> str:
        return f"FileRows({str(self.path)!r})"

    def _fileno(self) -> int:
        if self._fd is None:  # opened on first read: sources of every shard are cheap to build
            with _OPENING:  # two prefetch threads reading a new shard at once open it once
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return self._fd

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), self.record)
        raw = out.view(np.uint8).reshape(len(rows), self.record.itemsize)
        fd, size = self._fileno(), self.record.itemsize
        # Runs of consecutive rows (an unshuffled split, a sorted shard) are read with one call each.
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1 if len(rows) > 1 else np.empty(0, np.int64)
        for start, stop in zip(np.concatenate([[0], cuts]).tolist(), np.concatenate([cuts, [len(rows)]]).tolist()):
            if start == stop:
                continue
            view, offset = memoryview(raw[start:stop]).cast("B"), self.offset + int(rows[start]) * size
            while view.nbytes:
                got = os.preadv(fd, [view], offset)
                if got == 0:
                    raise DataError(f"{self.path}: ended at byte {offset} while reading row {rows[start]}; truncated?")
                view, offset = view[got:], offset + got
        array = out[self.field] if self.field else out
        if self.axes is not None:
            array = np.ascontiguousarray(array.transpose(0, *(a + 1 for a in self.axes)))
        return array

    def close(self) -> None:
        """Close the file (reopened by the next read)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.close()


class ConcatRows(RowSource):
    """Sources (or numpy arrays) of the same trailing shape and dtype, one after the other along the rows, e.g. the
    shard files of one split. Gathering reads each part's rows from that part."""

    def __init__(self, parts: Sequence, name: str = "ConcatRows"):
        if not parts:
            raise DataError(f"{name}: no parts to join")
        self.parts, self.name = list(parts), name
        first = self.parts[0]
        for part in self.parts[1:]:
            if tuple(part.shape[1:]) != tuple(first.shape[1:]) or np.dtype(part.dtype) != np.dtype(first.dtype):
                raise DataError(
                    f"{name}: {part!r} holds rows of {np.dtype(part.dtype)}{list(part.shape[1:])}, but "
                    f"{first!r} holds {np.dtype(first.dtype)}{list(first.shape[1:])}; all parts must agree"
                )
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.shape, self.dtype = (int(self.starts[-1]), *first.shape[1:]), np.dtype(first.dtype)

    def __repr__(self) -> str:
        return self.name

    def read(self, rows: np.ndarray) -> np.ndarray:
        which = np.searchsorted(self.starts, rows, side="right") - 1
        if len(self.parts) == 1:
            return np.asarray(self.parts[0][rows])
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        for part in np.unique(which).tolist():
            mask = which == part
            out[mask] = self.parts[part][rows[mask] - self.starts[part]]
        return out
