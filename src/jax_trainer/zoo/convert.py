"""Copy weights between linen variable dicts and nnx models by parameter path.

linen ``params`` map to ``nnx.Param`` and linen ``batch_stats`` to ``nnx.BatchStat``; paths are
compared as ``/``-joined strings (``l1/kernel``, ``bn1/mean``), so any pair of models whose
submodule names match converts, not only the zoo. Other nnx variables (rng state) are left alone.
"""

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax import traverse_util
from flax.core import meta

_COLLECTIONS = (("params", nnx.Param), ("batch_stats", nnx.BatchStat))


def _path_str(path) -> str:
    return "/".join(str(k) for k in path)


def _flatten(tree: Mapping) -> dict[str, object]:
    flat = traverse_util.flatten_dict(meta.unbox(dict(tree)))
    return {_path_str(k): v for k, v in flat.items()}


def linen_to_nnx_state(linen_variables: Mapping, nnx_model: nnx.Module) -> None:
    """Overwrite ``nnx_model``'s params and batch stats in place with ``linen_variables``.

    Raises:
        KeyError: an entry exists on one side only (the message names the collection and path).
        ValueError: an entry's shape differs between the two sides.
    """
    for collection, var_type in _COLLECTIONS:
        source = _flatten(linen_variables.get(collection, {}))
        state = nnx.state(nnx_model, var_type)
        targets = {_path_str(path): var for path, var in nnx.to_flat_state(state)}
        _check_same_paths(collection, set(source), set(targets))
        for path, var in targets.items():
            value = jnp.asarray(source[path])
            expected = np.shape(var.get_value())
            if value.shape != expected:
                raise ValueError(
                    f"{collection}/{path}: linen value has shape {value.shape}, nnx model expects {expected}"
                )
            var.set_value(value)
        nnx.update(nnx_model, state)


def nnx_to_linen_variables(nnx_model: nnx.Module) -> dict:
    """Return ``{"params": ..., "batch_stats": ...}`` nested dicts (empty collections left out)."""
    variables = {}
    for collection, var_type in _COLLECTIONS:
        flat = {
            tuple(str(k) for k in path): var.get_value()
            for path, var in nnx.to_flat_state(nnx.state(nnx_model, var_type))
        }
        if flat:
            variables[collection] = traverse_util.unflatten_dict(flat)
    return variables


def _check_same_paths(collection: str, linen_paths: set[str], nnx_paths: set[str]) -> None:
    """Both sides' unmatched paths in one message: the two lists are what a rename rule maps onto each other."""
    missing = sorted(nnx_paths - linen_paths)
    extra = sorted(linen_paths - nnx_paths)
    parts = []
    if missing:
        parts.append(f"nnx model has {missing} but the linen variables do not")
    if extra:
        parts.append(f"linen variables have {extra} but the nnx model does not")
    if parts:
        raise KeyError(f"{collection}: " + "; ".join(parts))
