"""Output parity between a linen model and its nnx port, in eval and in train mode.

Train mode compares what differs between the modes apart from randomness: BatchNorm normalising with
the batch statistics. Dropout is switched off on both sides for it (its masks come from different rng
streams), by intercepting ``nn.Dropout`` in linen and making every ``nnx.Dropout`` deterministic.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def _skip_dropout(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Dropout) and context.method_name == "__call__":
        return args[0]
    return next_fun(*args, **kwargs)


def max_abs_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output shapes differ: linen {a.shape}, nnx {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def parity_report(linen_module: nn.Module, linen_variables: dict, nnx_model: nnx.Module, inputs, tolerance) -> dict:
    """``{"eval": max|Δ|, "train": max|Δ|, "tolerance": t, "passed": bool}`` on ``inputs``."""
    inputs = jnp.asarray(inputs)

    @jax.jit
    def linen_outputs(variables, x):
        with nn.intercept_methods(_skip_dropout):
            train, _ = linen_module.apply(variables, x, train=True, mutable=["batch_stats"])
        return linen_module.apply(variables, x, train=False), train

    @nnx.jit
    def nnx_outputs(model, x):
        model.eval()
        evaluated = model(x)
        model.train()
        for _, module in nnx.iter_modules(model):
            if isinstance(module, nnx.Dropout):
                module.deterministic = True
        return evaluated, model(x)

    linen_eval, linen_train = linen_outputs(linen_variables, inputs)
    nnx_eval, nnx_train = nnx_outputs(nnx.clone(nnx_model), inputs)
    eval_diff, train_diff = max_abs_diff(linen_eval, nnx_eval), max_abs_diff(linen_train, nnx_train)
    return {
        "eval": eval_diff,
        "train": train_diff,
        "tolerance": tolerance,
        "passed": eval_diff <= tolerance and train_diff <= tolerance,
    }
