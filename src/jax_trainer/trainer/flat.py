"""The train state as the compiled steps see it: a flat list of arrays.

``jax.jit`` flattens its arguments and rebuilds its results on every call. A list of arrays is flattened in
C++; a linen ``TrainState`` (its static ``apply_fn`` and ``tx`` compared on every call) or an ``nnx.State``
(a Python callback per Variable, in and out) costs tens of microseconds more, a tenth of a small model's
step on CPU. So the loop carries the state's leaves, and the tree is rebuilt only when someone asks for it.
Typed PRNG keys (``nnx.Rngs`` keeps them) are carried as their raw ``uint32`` data, which jit passes a few
microseconds faster per call, and wrapped back inside the compiled step.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax


class FlatState:
    """A pytree held as ``leaves`` and ``treedef``; ``tree`` is rebuilt on the first read after the leaves moved."""

    def __init__(self, tree: Any = None):
        self.set(tree)

    def set(self, tree: Any) -> None:
        self._tree, self._stale = tree, False
        leaves, self.treedef = jax.tree.flatten(tree)
        self.key_impls = [_key_impl(leaf) for leaf in leaves]
        self.leaves = key_data(leaves, self.key_impls)

    def set_leaves(self, leaves: list) -> None:
        """New leaves of the same structure (a step's output): no tree walk now."""
        self.leaves, self._stale = leaves, True

    @property
    def tree(self) -> Any:
        if self._stale:
            self._tree = jax.tree.unflatten(self.treedef, wrap_keys(self.leaves, self.key_impls))
            self._stale = False
        return self._tree


def carry_leaves(step: Callable, flat: FlatState, layout: list | None = None) -> Callable:
    """``step((state, acc), batch)`` as a function of ``((state_leaves, acc), batch)``, leaves as ``flat`` holds them;
    with ``layout`` (a sharding per leaf) the new leaves are constrained to it."""
    treedef, key_impls = flat.treedef, list(flat.key_impls)

    @functools.wraps(step)  # keeps the name compile logs and profiles show
    def leaves_step(carry, batch):
        leaves, acc = carry
        (state, acc), out = step((jax.tree.unflatten(treedef, wrap_keys(leaves, key_impls)), acc), batch)
        new_leaves, new_treedef = jax.tree.flatten(state)
        if new_treedef != treedef:
            raise TypeError(f"The train step changed the structure of the state: {treedef} -> {new_treedef}.")
        new_leaves = key_data(new_leaves, key_impls)
        if layout is not None:
            new_leaves = [jax.lax.with_sharding_constraint(x, s) for x, s in zip(new_leaves, layout)]
        return (new_leaves, acc), out

    return leaves_step


def _key_impl(leaf):
    """The PRNG implementation of a typed key array, else None."""
    dtype = getattr(leaf, "dtype", None)
    return jax.random.key_impl(leaf) if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else None


def key_data(leaves: list, impls: list) -> list:
    return [leaf if impl is None else jax.random.key_data(leaf) for leaf, impl in zip(leaves, impls)]


def wrap_keys(leaves: list, impls: list) -> list:
    return [leaf if impl is None else jax.random.wrap_key_data(leaf, impl=impl) for leaf, impl in zip(leaves, impls)]


def first_arg_leaves(fn: Callable, treedef) -> Callable:
    """``fn(tree, *args)`` as a function of ``(leaves, *args)``."""

    @functools.wraps(fn)
    def leaves_fn(leaves, *args):
        return fn(jax.tree.unflatten(treedef, leaves), *args)

    return leaves_fn
