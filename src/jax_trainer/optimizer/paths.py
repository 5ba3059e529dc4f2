"""Parameter path strings shared by the linen and nnx backends.

A linen params dict ``{'l1': {'kernel': x}}`` and the ``nnx.State`` of a module with attribute
``l1 = nnx.Linear(...)`` both give ``l1/kernel``, so one weight-decay regex serves both backends.
In an ``nnx.State`` of ``nnx.Variable`` objects each leaf sits under a ``.value`` attribute of its
variable; that wrapper is not part of the name and is dropped. List indices become their number.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
from jax.tree_util import DictKey, FlattenedIndexKey, GetAttrKey, SequenceKey

_VARIABLE_VALUE_ATTR = "value"


def _key_name(key: Any) -> str | None:
    if isinstance(key, DictKey):
        return str(key.key)
    if isinstance(key, SequenceKey):
        return str(key.idx)
    if isinstance(key, GetAttrKey):
        return None if key.name == _VARIABLE_VALUE_ATTR else key.name
    if isinstance(key, FlattenedIndexKey):
        return str(key.key)
    return str(key)


def path_names(key_path: Sequence[Any]) -> list[str]:
    """The name parts of a jax key path, variable wrappers removed."""
    return [name for name in map(_key_name, key_path) if name is not None]


def param_path(key_path: Sequence[Any]) -> str:
    """``'/'``-joined parameter path for a key path from ``jax.tree_util.tree_flatten_with_path``."""
    return "/".join(path_names(key_path))


def param_paths(tree: Any) -> Any:
    """A tree of the same structure as ``tree`` whose leaves are their parameter path strings."""
    return jax.tree_util.tree_map_with_path(lambda key_path, _: param_path(key_path), tree)
