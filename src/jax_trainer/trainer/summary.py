"""The model summary: parameters by path (the paths WeightDecay matches, the same in linen and nnx), grouped by
module, with totals and the bytes they and the optimizer state take on one device. Logged at the start of ``fit``
and printed by ``jax-trainer summary``."""

from __future__ import annotations

import jax
import numpy as np

from jax_trainer.optimizer.paths import param_path


def model_summary(trainer) -> str:
    """The summary table of ``trainer``'s model (and optimizer state, once it exists) as text."""
    params = trainer.backend.params(trainer.model_state)
    rows = [(param_path(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]
    width = max([len(p) for p, _ in rows] + [9])
    model = getattr(trainer.model_config, "class_name", None) or type(trainer.model_config).__name__
    lines = [f"Model summary ({trainer.backend.name} backend, {model}):"]
    lines.append(f"  {'parameter':<{width}}  {'shape':<16} {'dtype':<9} {'count':>12}")
    module, subtotal = None, 0
    for path, leaf in rows:
        owner = path.rpartition("/")[0] or "(top)"
        if module is not None and owner != module:
            lines.append(f"  {module + '/*':<{width}}  {'':<16} {'':<9} {subtotal:>12,}")
            subtotal = 0
        module = owner
        size = _count(leaf)
        subtotal += size
        lines.append(f"  {path:<{width}}  {str(tuple(np.shape(leaf))):<16} {np.dtype(leaf.dtype).name:<9} {size:>12,}")
    if module is not None:
        lines.append(f"  {module + '/*':<{width}}  {'':<16} {'':<9} {subtotal:>12,}")
    total = sum(_count(leaf) for _, leaf in rows)
    lines.append(f"  Total: {total:,} parameters in {len(rows)} arrays")
    device = jax.devices()[0]
    memory = f"parameters {_size(device_bytes(params, device))}"
    if trainer.state is not None:
        memory += f", optimizer state {_size(device_bytes(trainer.backend.opt_state(trainer.state), device))}"
    lines.append(f"  On {device}: {memory}")
    return "\n".join(lines)


def parameter_count(trainer) -> int:
    """The number of trainable parameters."""
    return sum(_count(leaf) for leaf in jax.tree.leaves(trainer.backend.params(trainer.model_state)))


def _count(leaf) -> int:
    return int(np.prod(np.shape(leaf), dtype=np.int64))


def device_bytes(tree, device) -> int:
    """Bytes the arrays of ``tree`` hold on ``device`` (their shards there; host arrays count whole)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shards = getattr(leaf, "addressable_shards", None)
        if shards is None:
            total += np.asarray(leaf).nbytes
        else:
            total += sum(shard.data.nbytes for shard in shards if shard.device == device)
    return total


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"
