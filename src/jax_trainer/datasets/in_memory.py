"""Shared machinery of the built-in datasets: arrays held in memory, split once, served by
``NumpyLoader`` (train shuffled with drop_last; val/test in order, keeping the last partial batch)."""

import logging
from typing import Any

import jax
import numpy as np

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.interfaces import DatasetConfig, DatasetInterface, DatasetSplits
from jax_trainer.datasets.loader import NumpyLoader
from jax_trainer.datasets.splits import take

LOGGER = logging.getLogger(__name__)

_ALWAYS_IGNORED = ("num_workers", "pin_memory", "prefetch_factor")


class InMemoryDataset(DatasetInterface):
    """Subclasses implement ``load_splits``; ``ignored_fields`` names config fields that have no
    meaning for them (logged at debug level, never an error, so original configs keep loading)."""

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
        shard = {"num_shards": jax.process_count(), "shard_index": jax.process_index()}
        bs = self.config.global_batch_size

        def eval_loader(arrays):
            if arrays is None:
                return None
            if isinstance(arrays, dict):  # named splits: one loader per name
                return {name: eval_loader(part) for name, part in arrays.items()}
            return NumpyLoader(arrays, bs, shuffle=False, drop_last=False, **shard)

        return DatasetSplits(
            train=NumpyLoader(train, bs, shuffle=True, drop_last=True, seed=self.config.seed, **shard),
            val=eval_loader(val),
            test=eval_loader(test),
        )

    def example_batch(self) -> SupervisedBatch:
        train = self.splits()[0]
        return take(train, np.arange(min(self.local_batch_size(), train.size)))
