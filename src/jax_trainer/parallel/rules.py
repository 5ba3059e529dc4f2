"""Where each array of the train state lives: one ``PartitionSpec`` per leaf, decided by its path and shape.

For each leaf, in this order:
1. the first of ``trainer.sharding_rules`` (``[regex, [mesh axis or null per dimension]]``) whose regex is found in
   the leaf's path: the paths WeightDecay matches (``l1/kernel``), identical in linen and nnx;
2. the model's own annotation (``nnx.with_partitioning``, linen ``nn.with_partitioning`` or logical names, which
   ``trainer.logical_axis_rules`` map to mesh axes), reported by the backend per parameter path;
3. with an ``fsdp`` axis larger than 1: the leaf's largest dimension that the axis divides;
4. else replicated.
Optimizer state follows its parameter: its leaves' paths end with the parameter's path (``opt_state/0/mu/l1/kernel``)
and have its shape, so rules 1–3 give them the parameter's spec. A step counter or a PRNG key is replicated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import jax
from jax.sharding import PartitionSpec

from jax_trainer.optimizer.paths import param_path
from jax_trainer.parallel.mesh import MeshError

FSDP = "fsdp"


@dataclass(frozen=True)
class ShardingRule:
    """Leaves whose path contains a match of ``pattern`` are laid out as ``spec`` (one mesh axis or None per
    dimension)."""

    pattern: re.Pattern
    spec: tuple
    field: str  # where the rule came from, for errors


def parse_rules(raw: Any, field: str = "trainer.sharding_rules") -> list[ShardingRule]:
    """``[[regex, [axis | null, ...]], ...]`` → rules; a malformed entry fails naming its index."""
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise MeshError(f"{field} must be a list of [regex, [mesh axis or null per dimension]]; got {raw!r}.")
    rules = []
    for i, entry in enumerate(raw):
        where = f"{field}[{i}]"
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise MeshError(f"{where} must be [regex, [mesh axis or null per dimension]]; got {entry!r}.")
        pattern, spec = entry
        if not isinstance(spec, (list, tuple)) or not all(a is None or isinstance(a, str) for a in spec):
            raise MeshError(f"{where}: the spec must list one mesh axis name or null per dimension; got {spec!r}.")
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise MeshError(f"{where}: {pattern!r} is not a valid regular expression ({err}).") from err
        rules.append(ShardingRule(compiled, tuple(spec), where))
    return rules


def parse_logical_rules(raw: Any, field: str = "trainer.logical_axis_rules") -> dict[str, str | None]:
    """``[[logical name, mesh axis | null], ...]`` → a mapping (flax's logical-axis rules format)."""
    if raw is None:
        return {}
    pairs = {}
    for i, entry in enumerate(raw if isinstance(raw, (list, tuple)) else [raw]):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
                and (entry[1] is None or isinstance(entry[1], str))):
            raise MeshError(f"{field}[{i}] must be [logical axis name, mesh axis or null]; got {entry!r}.")
        pairs.setdefault(entry[0], entry[1])  # flax: the first rule for a name wins
    return pairs


def state_specs(tree: Any, mesh_shape: dict[str, int], rules: Sequence[ShardingRule],
                annotations: dict[str, tuple], logical: dict[str, str | None]) -> Any:
    """A tree like ``tree`` with the ``PartitionSpec`` of each leaf (see the module docstring)."""
    annotated = sorted(annotations.items(), key=lambda item: -len(item[0]))  # the longest matching path wins

    def spec_of(key_path, leaf) -> PartitionSpec:
        shape = tuple(getattr(leaf, "shape", ()))
        path = param_path(key_path)
        if not shape or jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            return PartitionSpec()
        for rule in rules:
            if rule.pattern.search(path):
                return _checked(rule.spec, shape, path, mesh_shape, rule.field)
        for param, names in annotated:
            if (path == param or path.endswith("/" + param)) and len(names) == len(shape):
                axes = tuple(_mesh_axis(name, logical, mesh_shape, param) for name in names)
                return _checked(axes, shape, path, mesh_shape, f"the model's annotation of {param}")
        return _fsdp_default(shape, mesh_shape)

    return jax.tree_util.tree_map_with_path(spec_of, tree)


def _mesh_axis(name: str | None, logical: dict[str, str | None], mesh_shape: dict[str, int], param: str):
    if name is None or name in mesh_shape:
        return name
    if name in logical:
        return logical[name]
    raise MeshError(
        f"parameter {param}: its annotation names axis {name!r}, which is neither a mesh axis "
        f"({sorted(mesh_shape)}, trainer.mesh) nor a logical name of trainer.logical_axis_rules."
    )


def _checked(spec: tuple, shape: tuple, path: str, mesh_shape: dict[str, int], source: str) -> PartitionSpec:
    if len(spec) != len(shape):
        raise MeshError(
            f"{source}: spec {list(spec)} has {len(spec)} dimension(s), but {path} has shape {list(shape)} "
            f"({len(shape)} dimensions)."
        )
    for dim, axis in zip(shape, spec):
        for name in (axis,) if isinstance(axis, str) else (axis or ()):
            if name not in mesh_shape:
                raise MeshError(f"{source}: axis {name!r} (for {path}) is not an axis of trainer.mesh {mesh_shape}.")
        size = _axis_size(axis, mesh_shape)
        if dim % size:
            raise MeshError(f"{source}: {path} has shape {list(shape)}; dimension {dim} is not divisible by "
                            f"mesh axis {axis!r} of size {size}.")
    return PartitionSpec(*spec)


def _axis_size(axis, mesh_shape: dict[str, int]) -> int:
    if axis is None:
        return 1
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    size = 1
    for name in names:
        size *= mesh_shape[name]
    return size


def _fsdp_default(shape: tuple, mesh_shape: dict[str, int]) -> PartitionSpec:
    size = mesh_shape.get(FSDP, 1)
    if size == 1:
        return PartitionSpec()
    divisible = [i for i, dim in enumerate(shape) if dim % size == 0]
    if not divisible:
        return PartitionSpec()
    dim = max(divisible, key=lambda i: shape[i])  # the first of the largest
    return PartitionSpec(*[FSDP if i == dim else None for i in range(len(shape))])
