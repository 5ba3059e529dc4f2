"""Putting arrays where the mesh says: the train state by its specs, batches split over the batch axes.

One process: a host batch is the global batch, cut over the local devices. Several processes: each loader yields
its process's contiguous share of every global batch (``NumpyLoader(num_shards=, shard_index=)``), and the global
array is assembled from the shares (``jax.make_array_from_process_local_data``): no process holds the whole batch. A
batch every process holds whole (a short last batch that does not split evenly, marked by its loader) is
replicated. ``jax.jit`` inserts the collectives itself from the shardings, so the steps are the same code on one
device or many.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jax_trainer.parallel.mesh import MeshError, batch_axes, batch_shards, build_mesh
from jax_trainer.parallel.rules import parse_logical_rules, parse_rules, state_specs

# A compiled identity copies host arrays to the device in jit's C++ dispatch path: for a small batch several
# times cheaper than ``jax.device_put``'s Python path, a cost the loop pays on every step.
_to_default_device = jax.jit(lambda batch: batch)


class Placement:
    """The mesh of a run (None: a single device) and the layouts on it. ``rules``, ``logical`` come from
    ``trainer.sharding_rules`` and ``trainer.logical_axis_rules`` (``rules.py``)."""

    def __init__(self, mesh: Mesh | None, rules=(), logical: dict | None = None):
        self.mesh = mesh
        self.rules, self.logical = list(rules), dict(logical or {})
        self.processes = jax.process_count()
        self._host_is_device = mesh is None and jax.default_backend() == "cpu"
        self._axes = batch_axes(mesh) if mesh is not None else ()
        if mesh is not None:  # the layouts a batch can take, made once (put_batch runs every step)
            self._replicated = NamedSharding(mesh, PartitionSpec())
            self._split = {axis: NamedSharding(mesh, PartitionSpec(*([None] * axis), self._axes)) for axis in (0, 1)}

    @property
    def num_shards(self) -> int:
        """How many ways a batch is split (the product of the batch axes)."""
        return batch_shards(self.mesh)

    # ----------------------------------------------------------------- state
    def context(self):
        """The mesh as jax's current one (``jax.set_mesh``) while a model is built, so a model that declares layouts
        can have its arrays made sharded; nothing without a mesh."""
        return contextlib.nullcontext() if self.mesh is None else jax.set_mesh(self.mesh)

    def specs(self, tree: Any, annotations: dict | None = None) -> Any:
        """The ``PartitionSpec`` of every leaf of ``tree`` (all replicated without a mesh)."""
        shape = dict(self.mesh.shape) if self.mesh is not None else {}
        return state_specs(tree, shape, self.rules, annotations or {}, self.logical)

    def shardings(self, tree: Any, annotations: dict | None = None) -> Any:
        """The ``NamedSharding`` of every leaf of ``tree``; None without a mesh."""
        if self.mesh is None:
            return None
        return jax.tree.map(lambda spec: NamedSharding(self.mesh, spec), self.specs(tree, annotations),
                            is_leaf=lambda x: isinstance(x, PartitionSpec))

    def build(self, make: Callable[..., Any], *args, annotations: Callable[[], dict] = dict,
              compiler_options: dict | None = None) -> Any:
        """``make(*args)`` (a model's or optimizer's init) with every array it returns made where its spec puts it:
        one program whose outputs carry their shardings, so each device computes only its shards and no array is
        ever whole on one device (a model too large for one device can be built). ``annotations`` is read after
        ``make`` has been traced (a backend records its model's declared layouts while building it);
        ``compiler_options`` go to ``jax.jit``. Without a mesh: ``make(*args)``."""
        if self.mesh is None:
            return make(*args)
        abstract = jax.eval_shape(make, *args)
        shardings = self.shardings(abstract, annotations())
        return jax.jit(make, out_shardings=shardings, compiler_options=compiler_options)(*args)

    def place(self, tree: Any, annotations: dict | None = None) -> Any:
        """``tree`` laid out by its specs. Every process passes the same values (same seed, same checkpoint); each
        keeps only the shards of its devices."""
        shardings = self.shardings(tree, annotations)
        if shardings is None:
            return tree
        return jax.tree.map(_put, tree, shardings)

    def replicate(self, tree: Any) -> Any:
        """``tree`` whole on every device of the mesh (a restored loop carry, fresh metric accumulators); arrays
        already spread over the mesh (a step's outputs) stay as they are; as it is without a mesh."""
        if self.mesh is None:
            return tree
        return jax.tree.map(lambda x: x if self._on_mesh(x) else _put(x, self._replicated), tree)

    def _on_mesh(self, x) -> bool:
        return isinstance(x, jax.Array) and getattr(x.sharding, "mesh", None) == self.mesh

    # ----------------------------------------------------------------- batches
    def prefetch(self, runs: Iterable[tuple[int, Any]]) -> Iterable[tuple[int, Any]]:
        """``(n_steps, batch)`` runs put on the devices ahead of use. On one CPU device, device memory is host
        memory: the compiled step takes numpy batches as they are, and a copy ahead of use would only add work."""
        from jax_trainer.parallel.prefetch import prefetch_to_device  # pylint: disable=import-outside-toplevel

        if self._host_is_device:
            return runs
        return prefetch_to_device(runs, size=2, put=self.put_batch)

    def put_batch(self, batch, stacked: bool = False):
        """The global array of a host batch (this process's share of it); ``stacked`` batches carry a leading steps
        axis before the batch axis."""
        if self.mesh is None:
            return _to_default_device(batch)
        whole = self.processes == 1 or getattr(batch, "whole", False)
        axis = 1 if stacked else 0
        split, replicated = self._split[axis], self._replicated

        def put(x):
            x = np.asarray(x)
            rows = x.shape[axis] * (1 if whole else self.processes) if x.ndim > axis else 0
            sharding = split if rows and rows % self.num_shards == 0 else replicated
            if whole:
                return jax.device_put(x, sharding)
            if sharding is replicated:
                raise MeshError(
                    f"A batch of {rows} rows over {self.processes} processes does not split over the "
                    f"{self.num_shards} batch shards of the mesh: the global batch size must be a multiple of "
                    f"{self.num_shards} (only a loader's short last batch may differ; NumpyLoader marks it)."
                )
            shape = x.shape[:axis] + (rows,) + x.shape[axis + 1:]
            return jax.make_array_from_process_local_data(sharding, x, shape)

        return jax.tree.map(put, batch)


def placement_of(config, mesh: Mesh | None = None) -> Placement:
    """The placement of a trainer config (``trainer.mesh``, ``trainer.sharding_rules``,
    ``trainer.logical_axis_rules``); ``mesh`` given overrides ``trainer.mesh``."""
    rules = parse_rules(config.sharding_rules)
    logical = parse_logical_rules(config.logical_axis_rules)
    mesh = build_mesh(config.mesh) if mesh is None else mesh
    if mesh is None and (rules or logical):
        used = "trainer.sharding_rules" if rules else "trainer.logical_axis_rules"
        raise MeshError(f"{used} needs a mesh: set trainer.mesh (there is {jax.device_count()} device).")
    return Placement(mesh, rules, logical)


def _put(x, sharding: NamedSharding):
    if jax.process_count() > 1 and not (isinstance(x, jax.Array) and not x.is_fully_addressable):
        # A host value or a process-local array: every process holds the same values, and each makes its own shards
        # from them (device_put cannot move a local device's array onto other processes' devices, and of a host
        # value it compares the values across processes: a collective, which fails on NaN).
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(_from_local(np.asarray(jax.random.key_data(x)), sharding),
                                            impl=jax.random.key_impl(x))
        return _from_local(np.asarray(x), sharding)
    return jax.device_put(x, sharding)


def _from_local(data: np.ndarray, sharding: NamedSharding) -> jax.Array:
    return jax.make_array_from_callback(data.shape, sharding, lambda index: data[index])


def tree_to_host(tree: Any) -> Any:
    """:func:`to_host` of every leaf: one ``jax.device_get`` of the tree (batched transfers) unless some leaf is
    spread over other processes' devices."""
    if all(held_whole(leaf) for leaf in jax.tree.leaves(tree)):
        return jax.device_get(tree)
    return jax.tree.map(to_host, tree)


def held_whole(x) -> bool:
    """Whether this process holds all of ``x`` (a host value, an array on its own devices, or a replicated one)."""
    return not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated


def to_host(x) -> np.ndarray:
    """A numpy copy of a (possibly multi-process) array: all of it, gathered where this process lacks shards."""
    if not held_whole(x):
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)
