"""Backend-free compiled steps: a backend's pure train/eval step plus on-device metric accumulation.

A step maps ``(carry, batch) -> (carry, concat_values)`` with ``carry = (state, accumulators)``, the
form ``jax.lax.scan`` takes, so one step and a scan over K batches share one definition. Metric specs
(aggregation modes) are static: they are discovered by tracing the user's loss once with
``jax.eval_shape`` before the step is compiled.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jax_trainer.logger.enums import LogMetricMode, LogMode
from jax_trainer.logger.metrics import (
    MetricSpec,
    concat_values,
    init_accumulator,
    result_keys,
    results_vector,
    split_metrics,
    update_accumulator,
)

EVAL_PREFIX = "eval"


def batch_size(batch) -> int:
    """Leading dimension of the batch's first array: the weight of a step in MEAN/STD metrics."""
    leaves = jax.tree.leaves(batch)
    return leaves[0].shape[0] if leaves and getattr(leaves[0], "ndim", 0) else 1


def _check_loss(loss, hook: str):
    if jnp.ndim(loss) != 0:
        raise TypeError(f"{hook}: the loss must be a scalar, got shape {jnp.shape(loss)}.")
    return loss


class StepInfo(NamedTuple):
    """One train step as a step extra sees it (traced): ``step`` is the global step after the update
    (the step the logger uses), ``values`` the step's metric values keyed as logged (``train/loss``)."""

    step: jax.Array
    loss: jax.Array
    grads: Any
    values: dict


def train_values(backend, state, batch, learning_rate: Callable | None, log_grad_norm: bool, inputs=None):
    """One backend train step → (new state, values, counts, grads, specs) with the trainer's own scalars added.

    ``inputs`` (value policies, traced scalars) reach the loss function as keyword arguments.
    """
    new_state, loss, metrics, grads = backend.train_step(state, batch, **(inputs or {}))
    values, counts, specs = split_metrics(metrics, "train", LogMode.TRAIN)
    values["train/loss"], specs["train/loss"] = _check_loss(loss, "train step"), MetricSpec()
    if learning_rate is not None:
        values["optimizer/lr"] = learning_rate(backend.opt_state(new_state))
        specs["optimizer/lr"] = MetricSpec(mode=LogMetricMode.SINGLE)
    if log_grad_norm:
        values["optimizer/grad_global_norm"] = optax.tree.norm(grads)
        specs["optimizer/grad_global_norm"] = MetricSpec()
    return new_state, values, counts, grads, specs


def eval_values(backend, state, batch, inputs=None):
    """Eval metrics for every eval phase; the host keeps those a phase logs (one compile for val and test)."""
    loss, metrics = backend.eval_step(state, batch, **(inputs or {}))
    values, counts, specs = split_metrics(metrics, EVAL_PREFIX, LogMode.EVAL)
    values[f"{EVAL_PREFIX}/loss"], specs[f"{EVAL_PREFIX}/loss"] = _check_loss(loss, "eval step"), MetricSpec()
    return values, counts, specs


def discover_specs(values_fn: Callable, *args) -> dict[str, MetricSpec]:
    """Trace ``values_fn`` abstractly (no compile, no FLOPs) to learn the static metric specs."""
    found = {}

    def capture(*a):
        *outputs, specs = values_fn(*a)
        found.update(specs)
        return outputs

    jax.eval_shape(capture, *args)
    return found


class Accumulators:
    """Builds and folds the accumulator pytree: a window (reset at each log point) and an epoch part."""

    def __init__(self, specs: dict[str, MetricSpec], windowed: bool, track_nonfinite: bool):
        self.specs = specs
        self.window_specs = {k: s for k, s in specs.items() if s.per_step} if windowed else {}
        self.epoch_specs = {k: s for k, s in specs.items() if s.per_epoch or not windowed}
        self.window_keys, self.epoch_keys = result_keys(self.window_specs), result_keys(self.epoch_specs)
        self.track_nonfinite = track_nonfinite

    def init(self, start_step: int = 0, inputs: dict | None = None) -> dict:
        """Fresh accumulators; ``count`` continues the global step so non-finite values name their step.

        The carry also holds the epoch's loss-function ``inputs`` (value policies; read-only, passed as arrays
        so a new value never recompiles) and ``extras``, the states of on-device step extras (see StepInfo),
        which the trainer fills from its callbacks.
        """
        acc = {"window": self.init_window(), "epoch": init_accumulator(self.epoch_specs)}
        acc["count"] = jnp.asarray(start_step, jnp.int32)
        acc["samples"] = jnp.zeros((), jnp.int32)  # examples in the current log window (for throughput)
        acc["inputs"], acc["extras"] = dict(inputs or {}), {}
        if self.track_nonfinite:
            acc["nonfinite"] = {
                k: jnp.full((), -1, jnp.int32) for k, s in self.epoch_specs.items() if s.mode != LogMetricMode.CONCAT
            }
        return acc

    def init_window(self) -> dict:
        return init_accumulator(self.window_specs)

    def fold(self, acc: dict, values: dict, counts: dict, weight) -> dict:
        new = dict(acc)
        new["window"] = update_accumulator(acc["window"], values, counts, self.window_specs, weight)
        new["epoch"] = update_accumulator(acc["epoch"], values, counts, self.epoch_specs, weight)
        new["count"] = acc["count"] + 1
        new["samples"] = acc["samples"] + weight
        if self.track_nonfinite:
            new["nonfinite"] = {
                k: jnp.where((first < 0) & ~jnp.isfinite(values[k]), acc["count"], first)
                for k, first in acc["nonfinite"].items()
            }
        return new

    def window_results(self, window: dict) -> jax.Array:
        """The window's metrics as one vector, ``window_keys`` order."""
        return results_vector(window, self.window_specs)

    def epoch_results(self, acc: dict) -> jax.Array:
        """The epoch's metrics as one vector, ``epoch_keys`` order."""
        return results_vector(acc["epoch"], self.epoch_specs)

    def finish_epoch(self, acc: dict, next_inputs: dict) -> tuple[jax.Array, dict]:
        """The epoch's results and the next epoch's fresh accumulators, in one call: between the epoch-end fetch
        and the next epoch's first step the device is idle, so the next epoch's carry is made before."""
        return self.epoch_results(acc), self.init(acc["count"], next_inputs)

    def take_window(self, acc: dict) -> tuple[jax.Array, dict]:
        """The window's results with its example count appended, as one vector, and ``acc`` with a fresh
        window (one compiled call and one fetch per log point)."""
        fresh = {"window": self.init_window(), "samples": jnp.zeros_like(acc["samples"])}
        window = jnp.concatenate([self.window_results(acc["window"]), acc["samples"].astype(jnp.float32)[None]])
        return window, {**acc, **fresh}


def make_train_step(
    backend, accumulators: Accumulators, learning_rate, log_grad_norm: bool, update_extras: Callable | None = None
) -> Callable:
    """``update_extras(extras_state, StepInfo) -> extras_state`` folds on-device step extras into the carry."""

    def train_step(carry, batch):
        state, acc = carry
        state, values, counts, grads, _ = train_values(
            backend, state, batch, learning_rate, log_grad_norm, acc["inputs"]
        )
        acc = accumulators.fold(acc, values, counts, batch_size(batch))
        if update_extras is not None:
            acc["extras"] = update_extras(acc["extras"], StepInfo(acc["count"], values["train/loss"], grads, values))
        return (state, acc), concat_values(values, accumulators.specs)

    return train_step


def make_eval_step(backend, accumulators: Accumulators) -> Callable:
    def eval_step(state, acc, batch):
        values, counts, _ = eval_values(backend, state, batch, acc["inputs"])
        acc = accumulators.fold(acc, values, counts, batch_size(batch))
        return acc, concat_values(values, accumulators.specs)

    return eval_step


def scan_steps(step: Callable) -> Callable:
    """K steps in one dispatch: ``batches`` carry a leading axis of K stacked batches."""

    def train_steps_scanned(carry, batches):
        return jax.lax.scan(step, carry, batches)

    return train_steps_scanned


def first_nonfinite(nonfinite: dict[str, Any]) -> tuple[str, int] | None:
    """(metric, step) of the earliest non-finite value recorded on device, fetched at a log point."""
    bad = [(int(s), k) for k, s in jax.device_get(nonfinite).items() if int(s) >= 0]
    if not bad:
        return None
    step, key = min(bad)
    return key, step
