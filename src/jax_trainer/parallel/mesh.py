"""``trainer.mesh``: named axis sizes over all devices of all processes.

``{data: -1, fsdp: 4}`` on 8 devices is a 2 × 4 mesh; -1 takes the devices the other axes leave. Batches are
split over the batch axes (``data`` and ``fsdp``), parameters over whatever their sharding rules name.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from jax_trainer.errors import InputError

BATCH_AXES = ("data", "fsdp")
"""The mesh axes a batch's leading dimension is split over, in this order."""


class MeshError(InputError):
    """A mesh or sharding configuration that cannot be laid out on the devices at hand."""


def check_axes(axes: dict, field: str = "trainer.mesh") -> None:
    """Fail on a malformed mesh mapping (names, sizes, more than one -1) before any device is asked."""
    if not isinstance(axes, dict) or not axes:
        raise MeshError(f"{field} must map axis names to sizes, e.g. {{data: -1, fsdp: 2}}; got {axes!r}.")
    for name, size in axes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise MeshError(f"{field}: axis name {name!r} must be an identifier.")
        if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
            raise MeshError(f"{field}.{name} must be a positive integer or -1 (the remaining devices); got {size!r}.")
    if list(axes.values()).count(-1) > 1:
        raise MeshError(f"{field}: at most one axis may be -1; got {axes}.")


def resolve(axes: dict, num_devices: int, field: str = "trainer.mesh") -> dict[str, int]:
    """The axis sizes with -1 replaced; their product must be ``num_devices``."""
    check_axes(axes, field)
    fixed = math.prod(size for size in axes.values() if size != -1)
    if -1 in axes.values():
        if num_devices % fixed:
            raise MeshError(f"{field} {axes}: the fixed axes ({fixed} devices) do not divide the {num_devices} devices.")
        return {name: (num_devices // fixed if size == -1 else size) for name, size in axes.items()}
    if fixed != num_devices:
        raise MeshError(
            f"{field} {axes}: the axis sizes multiply to {fixed}, but there are {num_devices} devices "
            f"({jax.process_count()} process(es)); use -1 for one axis to take the remaining devices."
        )
    return dict(axes)


def fitted(axes: dict | None, num_devices: int) -> dict | None:
    """``axes`` if they lay out on ``num_devices``, else the same axis names with every device on the first batch
    axis (size 1 for the others): a run restored onto other devices keeps the names its sharding rules use."""
    if axes is None:
        return None
    try:
        resolve(axes, num_devices)
        return axes
    except MeshError:
        first = next((name for name in BATCH_AXES if name in axes), next(iter(axes)))
        return {name: (-1 if name == first else 1) for name in axes}


def build_mesh(axes: dict | None, devices=None) -> Mesh | None:
    """The mesh of ``trainer.mesh`` over ``devices`` (default: all devices of all processes). Without a config:
    one ``data`` axis over all devices, or None on a single device (nothing to place)."""
    devices = list(jax.devices() if devices is None else devices)
    if axes is None:
        if len(devices) == 1:
            return None
        axes = {"data": -1}
    sizes = resolve(axes, len(devices))
    names = tuple(sizes)
    if devices == list(jax.devices()):  # jax orders the devices for the fastest links of each axis
        return jax.make_mesh(tuple(sizes.values()), names, axis_types=(AxisType.Auto,) * len(names))
    return Mesh(np.array(devices).reshape(tuple(sizes.values())), names, axis_types=(AxisType.Auto,) * len(names))


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """The batch axes this mesh has (a batch is split over their product)."""
    return tuple(name for name in BATCH_AXES if name in mesh.shape)


def batch_shards(mesh: Mesh | None) -> int:
    """How many ways a batch is split."""
    return 1 if mesh is None else math.prod(mesh.shape[name] for name in batch_axes(mesh))
