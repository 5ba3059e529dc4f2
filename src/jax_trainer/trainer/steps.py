"""Backend-free compiled steps: a backend's pure train/eval step plus on-device metric accumulation.

A train step maps ``((state, carry), batch) -> ((state, carry), concat_values)``, the form ``jax.lax.scan`` takes,
so one step and a scan over K batches share one definition. The :class:`Carry` names what rides along with the
state: the metric accumulators, the epoch's loss-function inputs and the step extras' states. Metric specs
(aggregation modes) are static: they are discovered by tracing the user's loss with ``jax.eval_shape`` before
the step is compiled, a trace the compiled step then reuses (:func:`trace_values`). Only the folding runs on the
device: fresh accumulators are numpy arrays made on the host, and results are finished on the host from the
fetched accumulators (:class:`Results`), so the steps are the only programs a run compiles.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jax_trainer.callbacks.step_extras import StepInfo
from jax_trainer.errors import InputError
from jax_trainer.logger import keys
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
from jax_trainer.parallel.placement import tree_to_host



class MetricAcc(NamedTuple):
    """On-device metric accumulators: ``window`` (reset at each log point; train only), ``epoch``, ``count`` (the
    global step, so a non-finite value names its step), ``samples`` (examples in the window, for throughput) and,
    with ``detect_nans``, ``nonfinite`` (per metric the first step it was non-finite, -1 if never)."""

    window: dict
    epoch: dict
    count: jax.Array
    samples: jax.Array
    nonfinite: dict | None


class Carry(NamedTuple):
    """What a dispatch carries besides the state: ``metrics``, the epoch's loss-function ``inputs`` (value
    policies; read-only arrays, so a new value never recompiles) and the step extras' states (``extras``)."""

    metrics: MetricAcc
    inputs: dict
    extras: dict


def batch_size(batch) -> int:
    """Leading dimension of the batch's first array: the weight of a step in MEAN/STD metrics."""
    leaves = jax.tree.leaves(batch)
    return leaves[0].shape[0] if leaves and getattr(leaves[0], "ndim", 0) else 1


def _check_loss(loss, hook: str):
    if jnp.ndim(loss) != 0:
        raise TypeError(f"{hook}: the loss must be a scalar, got shape {jnp.shape(loss)}.")
    return loss


def train_values(backend, state, batch, learning_rate: Callable | None, log_grad_norm: bool, inputs=None):
    """One backend train step → (new state, values, counts, grads, specs) with the trainer's own scalars added.

    ``inputs`` (value policies, traced scalars) reach the loss function as keyword arguments.
    """
    new_state, loss, metrics, grads = backend.train_step(state, batch, **(inputs or {}))
    values, counts, specs = split_metrics(metrics, keys.TRAIN, LogMode.TRAIN)
    values[keys.TRAIN_LOSS], specs[keys.TRAIN_LOSS] = _check_loss(loss, "train step"), MetricSpec()
    if learning_rate is not None:
        values[keys.LEARNING_RATE] = learning_rate(backend.opt_state(new_state))
        specs[keys.LEARNING_RATE] = MetricSpec(mode=LogMetricMode.SINGLE)
    if log_grad_norm:
        values[keys.GRAD_NORM] = optax.tree.norm(backend.precision.float32(grads))
        specs[keys.GRAD_NORM] = MetricSpec()
    return new_state, values, counts, grads, specs


def eval_values(backend, state, batch, inputs=None):
    """Eval metrics for every eval phase; the host keeps those a phase logs (one compile for val and test)."""
    loss, metrics = backend.eval_step(state, batch, **(inputs or {}))
    values, counts, specs = split_metrics(metrics, keys.EVAL, LogMode.EVAL)
    eval_loss = keys.loss_key(keys.EVAL)
    values[eval_loss], specs[eval_loss] = _check_loss(loss, "eval step"), MetricSpec()
    return values, counts, specs


def trace_values(values_fn: Callable, jit: Callable, *args) -> tuple[Callable, dict[str, MetricSpec]]:
    """``values_fn`` (returning ``(*outputs, specs)``) as a function of its outputs alone, wrapped in ``jit``, and
    the static metric specs, learnt by tracing it abstractly on ``args`` (no compile, no FLOPs).

    The compiled step calls the wrapped function on arguments of the same shapes, so jax reuses this trace: the
    user's loss is traced once per compile, not once for the specs and again for the step (about 30 ms of
    MLP-digits' 0.65 s to its first step). In the compiled program it is a call that XLA inlines: the optimized
    program is the same."""
    found = {}

    def values(*a):
        *outputs, specs = values_fn(*a)
        found.update(specs)
        return tuple(outputs)

    traced = jit(values)
    jax.eval_shape(traced, *args)
    return traced, found


class Accumulators:
    """Builds and folds the accumulator pytree: a window (reset at each log point) and an epoch part."""

    def __init__(self, specs: dict[str, MetricSpec], windowed: bool, track_nonfinite: bool):
        self.specs = specs
        self.window_specs = {k: s for k, s in specs.items() if s.per_step} if windowed else {}
        self.epoch_specs = {k: s for k, s in specs.items() if s.per_epoch or not windowed}
        self.window_keys, self.epoch_keys = result_keys(self.window_specs), result_keys(self.epoch_specs)
        self.track_nonfinite = track_nonfinite

    def init(self, start_step: int = 0, inputs: dict | None = None) -> Carry:
        """A fresh carry of numpy arrays (no compile; the step takes them as it takes a batch); ``count`` continues
        the global step. ``extras`` is filled by the runner."""
        nonfinite = None
        if self.track_nonfinite:
            nonfinite = {
                k: np.full((), -1, np.int32) for k, s in self.epoch_specs.items() if s.mode != LogMetricMode.CONCAT
            }
        metrics = MetricAcc(
            window=init_accumulator(self.window_specs),
            epoch=init_accumulator(self.epoch_specs),
            count=np.asarray(start_step, np.int32),
            samples=np.zeros((), np.int32),
            nonfinite=nonfinite,
        )
        return Carry(metrics, dict(inputs or {}), {})

    def fold(self, acc: MetricAcc, values: dict, counts: dict, weight) -> MetricAcc:
        """``acc`` with one step's values folded in (``weight``: the step's batch size)."""
        nonfinite = acc.nonfinite
        if self.track_nonfinite:
            nonfinite = {
                k: jnp.where((first < 0) & ~jnp.isfinite(values[k]), acc.count, first) for k, first in nonfinite.items()
            }
        return MetricAcc(
            window=update_accumulator(acc.window, values, counts, self.window_specs, weight),
            epoch=update_accumulator(acc.epoch, values, counts, self.epoch_specs, weight),
            count=acc.count + 1,
            samples=acc.samples + weight,
            nonfinite=nonfinite,
        )

    def epoch_results(self, carry: Carry) -> Results:
        """The epoch's metrics (``epoch_keys`` order), finished when read. The carry is not used after this: its
        accumulators are not donated to a later step, so they stay readable."""
        return Results(carry.metrics.epoch, self.epoch_specs)

    def take_window(self, carry: Carry) -> tuple[Results, Carry]:
        """The window's results (``window_keys`` order, then its example count), finished when read, and ``carry``
        with a fresh window from the host: the window's arrays leave the carry, so the next step does not donate
        them, and a log point dispatches nothing."""
        acc = carry.metrics
        window = Results(acc.window, self.window_specs, acc.samples)
        fresh = acc._replace(window=init_accumulator(self.window_specs), samples=np.zeros((), np.int32))
        return window, carry._replace(metrics=fresh)


class Results:
    """Accumulated metrics as the device holds them, finished on the host when read: ``is_ready()`` says whether
    the device has computed them (for a deferred write that must not wait), ``values()`` fetches and finishes
    them as floats in ``result_keys`` order, then the example count when one was given."""

    def __init__(self, accumulator: dict, specs: dict[str, MetricSpec], samples=None):
        self._arrays = (accumulator, samples)
        self._specs = specs

    def is_ready(self) -> bool:
        """Whether the device has computed every array (never waits)."""
        return all(leaf.is_ready() for leaf in jax.tree.leaves(self._arrays) if isinstance(leaf, jax.Array))

    def values(self) -> list[float]:
        """The finished values (waits for the device if it has not)."""
        accumulator, samples = tree_to_host(self._arrays)
        values = results_vector(accumulator, self._specs).tolist()
        return values if samples is None else [*values, float(samples)]


def make_train_step(values_fn: Callable, accumulators: Accumulators, update_extras: Callable | None = None) -> Callable:
    """``values_fn(state, batch, inputs) -> (new state, values, counts, grads)`` (:func:`train_values` without its
    specs); ``update_extras(extras_state, StepInfo) -> extras_state`` folds on-device step extras into the carry."""

    def train_step(state_carry, batch):
        state, carry = state_carry
        state, values, counts, grads = values_fn(state, batch, carry.inputs)
        metrics = accumulators.fold(carry.metrics, values, counts, batch_size(batch))
        extras = carry.extras
        if update_extras is not None:
            extras = update_extras(extras, StepInfo(metrics.count, values[keys.TRAIN_LOSS], grads, values))
        return (state, Carry(metrics, carry.inputs, extras)), concat_values(values, accumulators.specs)

    return train_step


def make_eval_step(values_fn: Callable, accumulators: Accumulators) -> Callable:
    """``values_fn(model_state, batch, inputs) -> (values, counts)`` (:func:`eval_values` without its specs)."""

    def eval_step(model_state, carry, batch):
        values, counts = values_fn(model_state, batch, carry.inputs)
        metrics = accumulators.fold(carry.metrics, values, counts, batch_size(batch))
        return carry._replace(metrics=metrics), concat_values(values, accumulators.specs)

    return eval_step


def scan_steps(step: Callable) -> Callable:
    """K steps in one dispatch: ``batches`` carry a leading axis of K stacked batches."""

    def train_steps_scanned(carry, batches):
        return jax.lax.scan(step, carry, batches)

    return train_steps_scanned


class NonFiniteError(InputError, FloatingPointError):
    """With ``detect_nans``: a metric became NaN or infinite (names the metric, step and epoch)."""


def first_nonfinite(carry: Carry) -> tuple[str, int] | None:
    """(metric, step) of the earliest non-finite value recorded on device (with ``detect_nans``), else None."""
    if carry.metrics.nonfinite is None:
        return None
    bad = [(int(s), k) for k, s in jax.device_get(carry.metrics.nonfinite).items() if int(s) >= 0]
    if not bad:
        return None
    step, key = min(bad)
    return key, step


def raise_if_nonfinite(carry: Carry, epoch_idx: int, before_raise=None) -> None:
    """With ``detect_nans``: a NonFiniteError naming the first metric that became non-finite and its step
    (``before_raise`` first, e.g. to flush the logs)."""
    found = first_nonfinite(carry)
    if found is not None:
        key, step = found
        if before_raise is not None:
            before_raise()
        raise NonFiniteError(f"detect_nans: metric '{key}' became non-finite at step {step + 1} (epoch {epoch_idx}).")
