"""State trees as checkpoints store them: nested dicts under string keys, addressed by key paths.

Every part of a checkpoint (train state, loop position) goes through these functions, so a stored entry has one
name (``model/params/l1/kernel``) whatever container held it in memory (dict, NamedTuple, flax struct).
"""

from __future__ import annotations

from typing import Any

import jax

Key = tuple[str, ...]


class DuplicateKeyError(ValueError):
    """Two entries of one state tree map to the same checkpoint key."""


def key_str(entry) -> str:
    """The string form of one key-path entry (a dict key, a sequence index or an attribute name)."""
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def name(key: Key) -> str:
    """``("model", "l1", "kernel")`` → ``"model/l1/kernel"``: how messages name an entry."""
    return "/".join(key)


def flatten(tree) -> dict[Key, Any]:
    """``{("model", "l1", "kernel"): leaf}``; None and empty containers have no leaves and vanish."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = tuple(key_str(e) for e in path)
        if key in flat:
            raise DuplicateKeyError(f"Two state entries map to the same checkpoint key {name(key)!r}.")
        flat[key] = leaf
    return flat


def nest(flat: dict[Key, Any]) -> dict:
    """Inverse of :func:`flatten` into nested dicts."""
    tree: dict = {}
    for key, leaf in flat.items():
        node = tree
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = leaf
    return tree


def to_storage(tree) -> dict:
    """A state tree as nested dicts with string keys: what orbax stores."""
    return nest(flatten(tree))


def from_storage(template, flat: dict[Key, Any]):
    """Values of ``flat`` (keyed like :func:`flatten`) in the structure of ``template``."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [flat[tuple(key_str(e) for e in p)] for p, _ in paths_leaves])


def subtree(flat: dict[Key, Any], prefix: Key) -> dict[Key, Any]:
    """The entries under ``prefix``, keyed relative to it."""
    return {k[len(prefix) :]: v for k, v in flat.items() if k[: len(prefix)] == prefix}
