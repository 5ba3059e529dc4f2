"""``trainer.precision`` and ``trainer.remat``: what happens at the boundary of the differentiated loss.

Pure functions over pytrees, no model framework: a backend wraps its loss function with :meth:`StepPrecision.wrap`
before differentiating it, so any model runs in bfloat16 without declaring dtypes.

- ``fp32`` (default): nothing is cast; :meth:`StepPrecision.wrap` returns the loss function itself.
- ``bf16-mixed``: parameters and optimizer state stay float32 in the train state (and in checkpoints); inside the
  compiled loss every floating input (parameters, mutable collections such as batch statistics, the batch) is cast
  to bfloat16, so the forward and backward passes run in bfloat16; the loss and every floating output come back as
  float32, so metrics, the gradient (the cast's transpose) and its norm are float32.
- ``bf16-true``: the model state itself is bfloat16 (:meth:`StepPrecision.cast_model_state` at init), so
  parameters, gradients and optimizer state are bfloat16; loss and metrics still come back as float32.

With ``remat`` the wrapped loss is rematerialized (``remat.py``): its forward activations are recomputed in the
backward pass instead of being kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jax_trainer.remat import remat_segments

PRECISIONS = ("fp32", "bf16-mixed", "bf16-true")


def check_precision(value) -> None:
    """Fail at config parse naming ``trainer.precision`` when ``value`` is not one of :data:`PRECISIONS`."""
    if value not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {', '.join(PRECISIONS)}; got {value!r}.")


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def cast_floating(tree, dtype) -> Any:
    """``tree`` with every floating leaf cast to ``dtype``; integers, booleans and PRNG keys are left alone."""
    return jax.tree.map(lambda x: x.astype(dtype) if _is_float(x) and x.dtype != dtype else x, tree)


def cast_like(tree, template) -> Any:
    """``tree`` with each floating leaf cast to the dtype of the leaf at the same position of ``template`` (a state
    computed in bfloat16 goes back to the dtype it is stored in)."""
    leaves, treedef = jax.tree.flatten(tree)
    like = jax.tree.leaves(template)
    if len(like) != len(leaves):
        raise ValueError(f"cast_like: {len(leaves)} leaves to cast but {len(like)} in the template.")
    cast = [x.astype(t.dtype) if _is_float(x) and _is_float(t) and x.dtype != t.dtype else x for x, t in zip(leaves, like)]
    return jax.tree.unflatten(treedef, cast)


@dataclass(frozen=True)
class StepPrecision:
    """The step settings of a trainer: ``precision`` (one of :data:`PRECISIONS`) and rematerialization (``remat``,
    a ``jax.checkpoint_policies`` name as ``remat_policy``, ``remat_segments``: None for one segment per matmul or
    convolution)."""

    precision: str = "fp32"
    remat: bool = False
    remat_policy: str = "nothing_saveable"
    remat_segments: int | None = None

    @classmethod
    def from_config(cls, config) -> "StepPrecision":
        """From a ``TrainerConfig`` (its ``precision``, ``remat``, ``remat_policy`` and ``remat_segments``)."""
        return cls(config.precision, config.remat, config.remat_policy, config.remat_segments)

    @property
    def compute_dtype(self):
        """The dtype the loss computes in: None for float32 (nothing cast)."""
        return None if self.precision == "fp32" else jnp.bfloat16

    def cast_model_state(self, model_state):
        """The model state as stored in the train state: bfloat16 with ``bf16-true``, else unchanged."""
        return cast_floating(model_state, jnp.bfloat16) if self.precision == "bf16-true" else model_state

    def wrap(self, loss_fn: Callable, differentiated: bool = True) -> Callable:
        """``loss_fn(*trees) -> (loss, aux)`` computed in :attr:`compute_dtype` (every floating leaf of ``trees``
        cast), its loss and floating ``aux`` leaves returned as float32; with ``remat`` (and ``differentiated``,
        i.e. a train step) rematerialized. fp32 without remat returns ``loss_fn`` itself."""
        dtype = self.compute_dtype
        fn = loss_fn
        if dtype is not None:

            def fn(*trees):
                loss, aux = loss_fn(*cast_floating(trees, dtype))
                return cast_floating((loss, aux), jnp.float32)

        if self.remat and differentiated:
            fn = remat_segments(fn, self.remat_policy, self.remat_segments)
        return fn

    def float32(self, tree):
        """``tree``'s floating leaves as float32 (a bfloat16 gradient before its norm); identity in fp32."""
        return tree if self.precision == "fp32" else cast_floating(tree, jnp.float32)
