"""Data parallelism over all local devices: state replicated, batches split along the batch axis.

``jax.jit`` inserts the gradient all-reduce itself from the shardings, so the steps stay the same
code on one device or many.
"""

from __future__ import annotations

from typing import Any, Iterable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jax_trainer.trainer.prefetch import prefetch_to_device

# A compiled identity copies host arrays to the device in jit's C++ dispatch path: for a small batch several
# times cheaper than ``jax.device_put``'s Python path, a cost the loop pays on every step.
_to_default_device = jax.jit(lambda batch: batch)


class DataParallel:
    def __init__(self, mesh: Mesh | None = None):
        if mesh is None and jax.device_count() > 1:
            mesh = Mesh(np.array(jax.devices()), ("data",))
        self.mesh = mesh
        self._host_is_device = mesh is None and jax.default_backend() == "cpu"

    @property
    def num_shards(self) -> int:
        return 1 if self.mesh is None else self.mesh.shape["data"]

    def replicate(self, tree):
        if self.mesh is None:
            return tree
        return jax.device_put(tree, NamedSharding(self.mesh, PartitionSpec()))

    def prefetch(self, runs: Iterable[tuple[int, Any]]) -> Iterable[tuple[int, Any]]:
        """``(n_steps, batch)`` runs put on the device ahead of use. On CPU device memory is host memory: the
        compiled step takes numpy batches as they are, and a copy ahead of use would only add work per step."""
        if self._host_is_device:
            return runs
        return prefetch_to_device(runs, size=2, put=self.put_batch)

    def put_batch(self, batch, stacked: bool = False):
        """Device copy of a batch; ``stacked`` batches carry a leading steps axis before the batch axis."""
        if self.mesh is None:
            return _to_default_device(batch)
        axis = 1 if stacked else 0
        split = PartitionSpec(*([None] * axis), "data")

        def put(x):
            divisible = np.ndim(x) > axis and np.shape(x)[axis] % self.num_shards == 0
            return jax.device_put(x, NamedSharding(self.mesh, split if divisible else PartitionSpec()))

        return jax.tree.map(put, batch)
