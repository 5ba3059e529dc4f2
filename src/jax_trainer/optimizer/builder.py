"""Assembles an optimizer config into one optax transformation with a readable learning rate.

The optimizer is wrapped in ``optax.inject_hyperparams`` so the learning rate actually used lives in
the optimizer state: it is checkpointed with it and ``current_learning_rate`` reads it inside jit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import optax

from .interfaces import OptimizerInterface, TransformInterface
from .paths import path_names
from .schedules import build_schedule
from .transforms import WeightDecay


@dataclass(frozen=True)
class OptimizerBundle:
    """``tx`` to init/update with; ``learning_rate_fn(step)`` is the schedule it follows."""

    tx: optax.GradientTransformation
    learning_rate_fn: optax.Schedule


def _check_single_weight_decay(own: WeightDecay | None, transforms: dict[str, TransformInterface]) -> None:
    """Two decays on the same parameters would silently compound; refuse the config instead."""
    sources = ["optimizer.weight_decay"] if own is not None else []
    sources += [
        f"optimizer.transforms.{name}"
        for name, transform in transforms.items()
        if isinstance(transform, WeightDecay) and transform.config.value > 0
    ]
    if len(sources) > 1:
        raise ValueError(f"weight decay is configured more than once ({' and '.join(sources)}); keep one of them")


def build_optimizer(config: Any, total_steps: int | None = None, accumulate_grad_batches: int = 1) -> OptimizerBundle:
    """Builds the optimizer described by ``config`` (an ``OptimizerInterface.cfgtype``).

    ``total_steps`` (train steps of the whole run) fills schedule lengths left out of the config.
    Transforms with ``before_optimizer`` run on the gradients in config order, then a coupled
    optimizer-level weight decay, then the optimizer (with its decoupled decay), then the others.
    ``accumulate_grad_batches > 1`` applies the update every that many steps (``optax.MultiSteps``); the schedule
    then counts updates.
    """
    if total_steps is not None:
        total_steps = max(1, total_steps // accumulate_grad_batches)
    optimizer = config.instantiate(OptimizerInterface)
    learning_rate_fn = build_schedule(config.learning_rate, total_steps, "optimizer.learning_rate")
    transforms = {name: cfg.instantiate(TransformInterface) for name, cfg in config.transforms.items()}
    own_decay = optimizer.weight_decay()
    _check_single_weight_decay(own_decay, transforms)

    before = [t for t in transforms.values() if t.before_optimizer]
    after = [t for t in transforms.values() if not t.before_optimizer]
    decoupled = None
    if own_decay is not None and own_decay.before_optimizer:
        before.append(own_decay)
    else:
        decoupled = own_decay

    def chain(learning_rate):
        return optax.chain(
            *(t.build(learning_rate) for t in before),
            optimizer.update_rule(learning_rate, decoupled),
            *(t.build(learning_rate) for t in after),
        )

    tx = optax.inject_hyperparams(chain)(learning_rate=learning_rate_fn)
    if accumulate_grad_batches > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=accumulate_grad_batches)
    return OptimizerBundle(tx=tx, learning_rate_fn=learning_rate_fn)


def current_learning_rate(opt_state: Any) -> jax.Array:
    """The learning rate used by the latest update (``learning_rate_fn(0)`` before any), read from state.

    Works on the raw optax state, on states nested in wrappers such as ``optax.MultiSteps``, and on
    nnx optimizer states whose leaves sit in ``nnx.Variable`` wrappers; jittable.
    """
    found = [
        leaf
        for key_path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]
        if path_names(key_path)[-2:] == ["hyperparams", "learning_rate"]
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected one injected learning rate in the optimizer state, found {len(found)}; "
            "build the optimizer with build_optimizer"
        )
    return found[0]
