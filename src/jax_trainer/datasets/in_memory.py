"""Shared machinery of the built-in datasets: row arrays (in memory, or RowSources left on disk), split once,
served by ``NumpyLoader`` (train shuffled with drop_last; val/test in order, keeping the last partial batch), with
the dataset's per-batch ``transform`` and ``num_workers`` prefetch threads."""

import logging
from typing import Any

import jax
import numpy as np

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.interfaces import DatasetConfig, DatasetInterface, DatasetSplits
from jax_trainer.datasets.loader import NumpyLoader

LOGGER = logging.getLogger(__name__)

_ALWAYS_IGNORED = ("pin_memory",)


class InMemoryDataset(DatasetInterface):
    """Subclasses implement ``load_splits`` and, when their rows are stored raw (uint8 images), ``transform``;
    ``ignored_fields`` names config fields that have no meaning for them (logged at debug level, never an error, so
    original configs keep loading). The name is historical: file-backed datasets (MNIST, CIFAR-10, NpyShards)
    share this machinery with rows that stay on disk."""

    config: DatasetConfig
    ignored_fields: tuple[str, ...] = ()

    def __init__(self, config: DatasetConfig):
        self.config = config
        ignored = {f: getattr(config, f) for f in _ALWAYS_IGNORED + self.ignored_fields}
        LOGGER.debug("%s ignores %s", type(self).__name__, ignored)
        self._splits = None

    def load_splits(self) -> tuple[SupervisedBatch, Any, Any]:
        """Return (train, val, test) arrays; val/test may be None, or a dict name -> arrays (named splits, one loader
        each: metrics ``val/<name>/<metric>``)."""
        raise NotImplementedError

    def transform(self, batch: SupervisedBatch) -> SupervisedBatch:
        """A gathered batch of stored rows -> the batch served (casting, normalisation); the rows as they are by
        default. Must act row by row, so that a batch is served the same whatever the rows around it."""
        return batch

    def splits(self) -> tuple[SupervisedBatch, Any, Any]:
        """``load_splits`` computed once and cached."""
        if self._splits is None:
            self._splits = self.load_splits()
        return self._splits

    def local_batch_size(self) -> int:
        cfg, processes = self.config, jax.process_count()
        if cfg.global_batch_size % processes:
            raise DataError(
                f"global_batch_size {cfg.global_batch_size} is not divisible by {processes} processes"
            )
        local = cfg.global_batch_size // processes
        if cfg.local_batch_size is not None and cfg.local_batch_size != local:
            raise DataError(
                f"local_batch_size {cfg.local_batch_size} must equal global_batch_size "
                f"{cfg.global_batch_size} / {processes} processes = {local}"
            )
        return local

    def build(self) -> DatasetSplits:
        self.local_batch_size()
        train, val, test = self.splits()
        cfg = self.config
        shard = {"num_shards": jax.process_count(), "shard_index": jax.process_index(), **self._loader_options()}
        bs = cfg.global_batch_size

        def eval_loader(arrays):
            if arrays is None:
                return None
            if isinstance(arrays, dict):  # named splits: one loader per name
                return {name: eval_loader(part) for name, part in arrays.items()}
            return NumpyLoader(arrays, bs, shuffle=False, drop_last=False, **shard)

        return DatasetSplits(
            train=NumpyLoader(train, bs, shuffle=True, drop_last=True, seed=cfg.seed, **shard),
            val=eval_loader(val),
            test=eval_loader(test),
        )

    def _loader_options(self) -> dict:
        """The per-batch transform (only where the subclass has one) and the prefetch settings."""
        own = type(self).transform is not InMemoryDataset.transform
        cfg = self.config
        return {"transform": self.transform if own else None, "num_workers": cfg.num_workers,
                "prefetch_factor": cfg.prefetch_factor}

    def example_batch(self) -> SupervisedBatch:
        train = self.splits()[0]
        rows = np.arange(min(self.local_batch_size(), train.size))
        return self.transform(jax.tree_util.tree_map(lambda a: np.asarray(a[rows]), train))
