"""Rematerialization of any loss function, without the model declaring it: ``trainer.remat``.

``jax.checkpoint`` around the whole loss saves nothing: the backward pass recomputes the whole forward pass and keeps
all of it again (measured: the same temporary memory on XLA:CPU for any policy). So the loss is traced once to a
jaxpr (``jax.make_jaxpr``), its equations are cut into segments that each start at a matmul or convolution (a layer,
for the usual model), and each segment is evaluated under ``jax.checkpoint`` with the named policy: the backward pass
keeps only the segments' inputs and recomputes each segment's activations when it reaches it. The numbers are the
same as without remat (the same operations in the same order). Only the public ``jax.extend.core`` API is used.
"""

from __future__ import annotations

from typing import Callable

import jax
from jax.extend import core as jcore

# The policies of jax.checkpoint_policies that are policies themselves (the others are factories taking names).
REMAT_POLICIES = (
    "nothing_saveable",
    "everything_saveable",
    "dots_saveable",
    "checkpoint_dots",
    "dots_with_no_batch_dims_saveable",
    "checkpoint_dots_with_no_batch_dims",
)
_HEAVY = frozenset({"dot_general", "conv_general_dilated"})


def check_remat(policy, segments) -> None:
    """Fail at config parse naming ``trainer.remat_policy`` / ``trainer.remat_segments``."""
    if policy not in REMAT_POLICIES:
        raise ValueError(f"trainer.remat_policy must be one of {', '.join(REMAT_POLICIES)}; got {policy!r}.")
    if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int) or segments < 1):
        raise ValueError(f"trainer.remat_segments must be an integer >= 1 or null; got {segments!r}.")


def _heavy(eqn) -> int:
    """Matmuls and convolutions in an equation, nested jaxprs (``jit``, ``custom_jvp``) included."""
    n = int(eqn.primitive.name in _HEAVY)
    for sub in jcore.jaxprs_in_params(eqn.params):
        n += sum(_heavy(e) for e in sub.eqns)
    return n


def split_equations(eqns, segments: int | None) -> list[list]:
    """Cut ``eqns`` into at most ``segments`` runs (None: one per matmul or convolution) with about equal numbers of
    matmuls and convolutions; a cut always falls just before one of them."""
    weights = [_heavy(e) for e in eqns]
    total = sum(weights)
    k = total if segments is None else min(segments, total)
    if k <= 1:
        return [list(eqns)]
    per, out, current, done = total / k, [], [], 0
    for eqn, weight in zip(eqns, weights):
        if weight and current and done >= per * (len(out) + 1) - 1e-9 and len(out) < k - 1:
            out.append(current)
            current = []
        current.append(eqn)
        done += weight
    return out + [current] if current else out


def remat_segments(fn: Callable, policy: str = "nothing_saveable", segments: int | None = None) -> Callable:
    """``fn`` (pytrees in, pytree out) evaluated segment by segment, each segment under ``jax.checkpoint(policy)``."""
    check_remat(policy, segments)
    checkpoint_policy = getattr(jax.checkpoint_policies, policy)

    def rematerialized(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        jaxpr = closed.jaxpr
        env = dict(zip(jaxpr.constvars, closed.consts))
        env.update(zip(jaxpr.invars, jax.tree.leaves(args)))
        parts = split_equations(jaxpr.eqns, segments)
        needed_after, needed = [], {v for v in jaxpr.outvars if isinstance(v, jcore.Var)}
        for part in reversed(parts):
            needed_after.append(set(needed))
            needed.update(v for e in part for v in e.invars if isinstance(v, jcore.Var))
        for part, later in zip(parts, reversed(needed_after)):
            defined = {v for e in part for v in e.outvars}
            inputs = list(dict.fromkeys(v for e in part for v in e.invars if isinstance(v, jcore.Var) and v not in defined))
            outputs = [v for e in part for v in e.outvars if v in later and not isinstance(v, jcore.DropVar)]
            info = jcore.DebugInfo("remat segment", None, tuple(map(str, inputs)), tuple(map(str, outputs)))
            segment = jcore.Jaxpr([], inputs, outputs, part, effects=jaxpr.effects, debug_info=info)
            values = jax.checkpoint(jcore.jaxpr_as_fun(jcore.ClosedJaxpr(segment, [])), policy=checkpoint_policy)(
                *(env[v] for v in inputs)
            )
            env.update(zip(outputs, values))
        flat = [v.val if isinstance(v, jcore.Literal) else env[v] for v in jaxpr.outvars]
        return jax.tree.unflatten(jax.tree.structure(out_shape), flat)

    return rematerialized
