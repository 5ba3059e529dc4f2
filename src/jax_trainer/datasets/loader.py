"""Batch iterator over row arrays (in memory or on disk) whose order and position can be checkpointed and
restored exactly."""

import dataclasses
import math
from typing import Callable, Optional

import jax
import numpy as np

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.workers import prefetched


class NumpyLoader:
    """Iterates ``SupervisedBatch`` es of numpy arrays over ``arrays`` (one row per example).

    The order of epoch ``e`` is a pure function of ``(seed, e)``, so a resumed run sees the same
    order. The loader is a cursor ``(epoch, batch_idx)``: iterating continues from it and advances it
    as batches are yielded (finishing an epoch moves it to the start of the next), ``set_epoch(e)``
    moves it to the start of epoch ``e``, and ``iter_from(k)`` to batch ``k`` of the current epoch.
    ``state_dict()`` taken after a batch was consumed and restored with ``load_state_dict()``
    therefore continues with the very next batch. ``iter_runs(n)`` serves the same batches in runs of
    ``n``, stacked, for a trainer that runs several steps per dispatch.

    ``batch_size`` is the global batch; with ``num_shards > 1`` (one shard per process) every shard
    walks the same global order and yields its own contiguous slice of each full global batch, gathering only
    those rows. A short last batch is read whole by every shard and marked ``whole`` (it need not split evenly;
    the trainer replicates it), so every example is seen exactly once, as on one process.

    ``arrays`` may hold numpy arrays or :class:`~jax_trainer.datasets.sources.RowSource` s (rows kept on disk,
    read per batch in their stored dtype). ``transform`` (``SupervisedBatch -> SupervisedBatch``) runs on each
    gathered batch of rows, before a run is stacked: casting and normalising uint8 images per batch, so the set
    is never converted whole. With ``num_workers > 0`` that many threads gather and transform up to
    ``num_workers * prefetch_factor`` batches (default factor 2) ahead of the consumer, in order; the batches
    and the cursor are the same as without workers.
    """

    def __init__(
        self,
        arrays: SupervisedBatch,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_shards: int = 1,
        shard_index: int = 0,
        transform: Optional[Callable[[SupervisedBatch], SupervisedBatch]] = None,
        num_workers: int = 0,
        prefetch_factor: Optional[int] = None,
    ):
        leaves = jax.tree_util.tree_leaves(arrays)
        if not leaves:
            raise DataError("NumpyLoader needs at least one array")
        sizes = {np.shape(leaf)[0] for leaf in leaves}
        if len(sizes) != 1:
            raise DataError(f"all arrays must have the same leading dimension, got {sorted(sizes)}")
        if batch_size <= 0:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        if batch_size % num_shards:
            raise DataError(f"batch_size {batch_size} is not divisible by num_shards {num_shards}")
        if not 0 <= shard_index < num_shards:
            raise DataError(f"shard_index {shard_index} out of range for num_shards {num_shards}")
        if num_workers < 0 or (prefetch_factor is not None and prefetch_factor < 1):
            raise DataError(f"num_workers must be >= 0 and prefetch_factor >= 1, got {num_workers}, {prefetch_factor}")
        self.arrays = arrays
        self.num_examples = sizes.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_shards = num_shards
        self.shard_index = shard_index
        self.transform = transform
        self.num_workers = num_workers
        self.prefetch_factor = 2 if prefetch_factor is None else prefetch_factor
        if len(self) == 0:
            raise DataError(
                f"{self.num_examples} examples give no batch of size {batch_size} with drop_last=True"
            )
        self._epoch = 0
        self._batch_idx = 0
        self._shuffled: tuple = (None, None)  # ((seed, epoch, num_examples), read-only order): see __iter__

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_examples // self.batch_size
        return math.ceil(self.num_examples / self.batch_size)

    @property
    def epoch(self) -> int:
        return self.state_dict()["epoch"]

    def set_epoch(self, epoch: int) -> None:
        """Move to the start of ``epoch`` (whatever was consumed before, e.g. an example batch)."""
        self._epoch, self._batch_idx = epoch, 0

    def state_dict(self) -> dict[str, int]:
        """Position of the next batch to be yielded."""
        if self._batch_idx >= len(self):
            return {"epoch": self._epoch + 1, "batch_idx": 0}
        return {"epoch": self._epoch, "batch_idx": self._batch_idx}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, batch_idx = int(state["epoch"]), int(state["batch_idx"])
        if not 0 <= batch_idx <= len(self):
            raise DataError(f"batch_idx {batch_idx} out of range for a loader of {len(self)} batches")
        self._epoch, self._batch_idx = epoch, batch_idx

    def order(self, epoch: int) -> np.ndarray:
        """Example indices of ``epoch`` in the order they are served."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        key = (self.seed, epoch, self.num_examples)
        if self._shuffled[0] != key:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            order.flags.writeable = False
            self._shuffled = (key, order)
        return self._shuffled[1]

    def iter_from(self, start_batch: int):
        """Iterate the current epoch from batch ``start_batch`` (a mid-epoch resume)."""
        self.load_state_dict({"epoch": self._epoch, "batch_idx": start_batch})
        return iter(self)

    def __iter__(self):
        for _, batch in self.iter_runs(1):
            yield batch

    def iter_runs(self, size: int):
        """``(n, batch)`` from the cursor on: runs of ``n <= size`` consecutive batches, each gathered at once and
        stacked on a new leading axis (a run of one is a plain batch). A run stops at the end of the epoch and
        before a short last batch. The cursor advances past a run as it is yielded."""
        state = self.state_dict()
        self._epoch, self._batch_idx = state["epoch"], state["batch_idx"]
        runs = self._runs(self.order(self._epoch), self._batch_idx, size)
        if not self.num_workers:
            for n, end, batch in map(self._gather, runs):
                self._batch_idx = end
                yield n, batch
        else:
            batches = prefetched(runs, self._gather, self.num_workers, self.num_workers * self.prefetch_factor)
            try:
                for n, end, batch in batches:
                    self._batch_idx = end
                    yield n, batch
            finally:  # a consumer that stops early (max_steps, an error) stops the threads with it
                batches.close()
        # Shuffle the next epoch now, while the device still works through this one's last steps: a training loop
        # asks for it right after its epoch-end sync, when host work leaves the device idle.
        self.order(self._epoch + 1)

    def _runs(self, order: np.ndarray, i: int, size: int):
        """``(n, end, rows, whole)`` of each run from batch ``i``: its length, the cursor after it, this shard's rows,
        and whether every shard reads it whole."""
        full = self.num_examples // self.batch_size
        while i < len(self):
            n = min(size, len(self) - i, full - i) if i < full else 1
            rows = [self._shard(order[j * self.batch_size : (j + 1) * self.batch_size]) for j in range(i, i + n)]
            whole = self.num_shards > 1 and i >= full  # the short last batch, held whole by every shard
            i += n
            yield n, i, rows[0] if n == 1 else np.concatenate(rows), whole

    def _gather(self, run) -> tuple[int, int, SupervisedBatch]:
        """A run's ``(n, end, batch)``: its rows read, transformed and (for n > 1) stacked on a new leading axis."""
        n, end, rows, whole = run
        batch = jax.tree_util.tree_map(lambda a: a[rows], self.arrays)
        if self.transform is not None:
            batch = self.transform(batch)
        if whole and isinstance(batch, SupervisedBatch):
            batch = dataclasses.replace(batch, whole=True)
        if n > 1:
            batch = jax.tree_util.tree_map(lambda a: a.reshape(n, -1, *a.shape[1:]), batch)
        return n, end, batch

    def _shard(self, rows: np.ndarray) -> np.ndarray:
        if self.num_shards == 1 or len(rows) < self.batch_size:  # a short last batch: read whole (see above)
            return rows
        share = self.batch_size // self.num_shards
        return rows[self.shard_index * share : (self.shard_index + 1) * share]
