"""On-device metric accumulation.

Loss functions return metrics as values or as ``{"value": v, "mode": ..., "log_freq": ..., "log_mode": ...}``.
The trainer splits them into traced values and static :class:`MetricSpec` at trace time, folds each step
into an accumulator pytree inside the jitted step, and fetches the finished numbers only at log points —
so logging never forces a device sync per step.

Every aggregation is three pure functions, as in optax: ``init`` builds the empty state, ``update``
folds in one step's value with its weight (the batch size), ``result`` finishes it. Only ``update`` runs on the
device, inside the step: the empty state is made and the result finished on the host with numpy, so neither needs
a compiled program of its own (each would be a compile before the first step or at the first log point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jax_trainer.logger.enums import LogFreq, LogMetricMode, LogMode
from jax_trainer.logger.keys import step_key

Array = jax.Array


@dataclass(frozen=True)
class MetricSpec:
    """Static description of one metric: how it aggregates, how often and in which phases it is logged."""

    mode: LogMetricMode = LogMetricMode.MEAN
    log_freq: LogFreq = LogFreq.ANY
    log_mode: LogMode = LogMode.ANY

    @property
    def per_step(self) -> bool:
        return self.log_freq in (LogFreq.STEP, LogFreq.ANY)

    @property
    def per_epoch(self) -> bool:
        return self.log_freq in (LogFreq.EPOCH, LogFreq.ANY)


class Aggregation(NamedTuple):
    """``init() -> state`` of Python floats, ``update(state, value, weight) -> state`` (jittable), ``result(state)``
    of numpy arrays (on the host)."""

    init: Callable[[], Any]
    update: Callable[[Any, Array, Array], Any]
    result: Callable[[Any], np.ndarray]


def _f32(x) -> Array:
    return jnp.asarray(x, jnp.float32)


def _mean() -> Aggregation:
    return Aggregation(
        init=lambda: (0.0, 0.0),
        update=lambda s, v, w: (s[0] + v * w, s[1] + w),
        result=lambda s: s[0] / np.maximum(s[1], 1e-12),
    )


def _sum() -> Aggregation:
    return Aggregation(init=lambda: 0.0, update=lambda s, v, w: s + v, result=lambda s: s)


def _single() -> Aggregation:
    return Aggregation(init=lambda: float("nan"), update=lambda s, v, w: _f32(v), result=lambda s: s)


def _max() -> Aggregation:
    return Aggregation(init=lambda: -float("inf"), update=lambda s, v, w: jnp.maximum(s, v), result=lambda s: s)


def _min() -> Aggregation:
    return Aggregation(init=lambda: float("inf"), update=lambda s, v, w: jnp.minimum(s, v), result=lambda s: s)


def _std() -> Aggregation:
    """Weighted standard deviation with Chan's parallel update: stable where sum-of-squares is not."""

    def update(s, v, w):
        weight, mean, m2 = s
        total = weight + w
        delta = v - mean
        safe_total = jnp.maximum(total, 1e-12)
        return total, mean + delta * w / safe_total, m2 + delta * delta * weight * w / safe_total

    return Aggregation(
        init=lambda: (0.0, 0.0, 0.0),
        update=update,
        result=lambda s: np.sqrt(np.maximum(s[2], 0.0) / np.maximum(s[0], 1e-12)),
    )


AGGREGATIONS: dict[LogMetricMode, Callable[[], Aggregation]] = {
    LogMetricMode.MEAN: _mean,
    LogMetricMode.SUM: _sum,
    LogMetricMode.SINGLE: _single,
    LogMetricMode.MAX: _max,
    LogMetricMode.MIN: _min,
    LogMetricMode.STD: _std,
}


def _as_enum(enum_cls, value, name: str, field: str):
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str) and value.upper() in enum_cls.__members__:
        return enum_cls[value.upper()]
    raise ValueError(
        f"Metric '{name}': {field} must be one of {sorted(enum_cls.__members__)} (or {enum_cls.__name__}.X), got {value!r}."
    )


def parse_metric(name: str, metric: Any) -> tuple[Array, Array | None, MetricSpec]:
    """One metric as returned by a loss function → (value, optional count weight, spec)."""
    if isinstance(metric, Mapping):
        unknown = set(metric) - {"value", "mode", "log_freq", "log_mode", "count"}
        if "value" not in metric or unknown:
            raise ValueError(
                f"Metric '{name}': a dict metric needs 'value' and may have 'mode', 'log_freq', 'log_mode', 'count'; "
                f"got keys {sorted(metric)}."
            )
        spec = MetricSpec(
            mode=_as_enum(LogMetricMode, metric.get("mode", LogMetricMode.MEAN), name, "mode"),
            log_freq=_as_enum(LogFreq, metric.get("log_freq", LogFreq.ANY), name, "log_freq"),
            log_mode=_as_enum(LogMode, metric.get("log_mode", LogMode.ANY), name, "log_mode"),
        )
        value, count = metric["value"], metric.get("count")
    else:
        spec, value, count = MetricSpec(), metric, None
    try:
        value = jnp.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"Metric '{name}' must be a number or an array, got {type(value).__name__}.") from err
    if spec.mode != LogMetricMode.CONCAT and value.size != 1:
        raise ValueError(
            f"Metric '{name}' must be a scalar for mode {spec.mode.name}, got shape {value.shape}. "
            "Reduce it in the loss function or use LogMetricMode.CONCAT to gather arrays."
        )
    if spec.mode != LogMetricMode.CONCAT:
        value = value.reshape(())
    return value, count, spec


def active_in(spec: MetricSpec, phase: LogMode) -> bool:
    """Whether a metric is computed in ``phase``; phase EVAL (one step shared by val and test) keeps a metric
    active in either, and the host later keeps per phase only what that phase logs."""
    if phase == LogMode.EVAL:
        return spec.log_mode.includes(LogMode.VAL) or spec.log_mode.includes(LogMode.TEST)
    return spec.log_mode.includes(phase)


def split_metrics(metrics: Mapping[str, Any], prefix: str, phase: LogMode) -> tuple[dict, dict, dict[str, MetricSpec]]:
    """Metrics of one step → (values, counts, specs), keyed ``<prefix>/<name>``, keeping those active in ``phase``."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"Loss function metrics must be a dict of name → value, got {type(metrics).__name__}.")
    values, counts, specs = {}, {}, {}
    for name, metric in metrics.items():
        value, count, spec = parse_metric(name, metric)
        if not active_in(spec, phase):
            continue
        key = step_key(name, prefix)
        values[key], specs[key] = value, spec
        if count is not None:
            counts[key] = jnp.asarray(count, jnp.float32)
    return values, counts, specs


def _groups(specs: Mapping[str, MetricSpec]) -> dict[str, tuple[str, ...]]:
    """Non-CONCAT metric keys by aggregation mode name, in ``specs`` order."""
    groups: dict[str, list[str]] = {}
    for key, spec in specs.items():
        if spec.mode != LogMetricMode.CONCAT:
            groups.setdefault(spec.mode.name, []).append(key)
    return {mode: tuple(keys) for mode, keys in groups.items()}


def init_accumulator(specs: Mapping[str, MetricSpec]) -> dict:
    """Empty accumulator for the non-CONCAT metrics in ``specs``, as numpy arrays: made on the host, it costs no
    compiled program, and the compiled step takes it as it takes a batch.

    The metrics of one mode are stacked into vectors, so folding a step is one fused update per mode rather
    than a few tiny kernels per metric (on CPU every kernel has a fixed cost, a measurable part of a small step).
    """

    def stacked(n: int):
        return lambda x: np.full((n,), x, np.float32)

    return {
        mode: jax.tree.map(stacked(len(keys)), AGGREGATIONS[LogMetricMode[mode]]().init())
        for mode, keys in _groups(specs).items()
    }


def update_accumulator(acc: dict, values: Mapping, counts: Mapping, specs: Mapping[str, MetricSpec], weight) -> dict:
    """Fold one step's values into ``acc`` (jittable). ``weight`` is the batch size unless a metric gives a count."""
    new = {}
    for mode, keys in _groups(specs).items():
        value = jnp.stack([_f32(values[k]) for k in keys])
        count = jnp.stack([_f32(counts.get(k, weight)) for k in keys])
        new[mode] = AGGREGATIONS[LogMetricMode[mode]]().update(acc[mode], value, count)
    return new


def result_keys(specs: Mapping[str, MetricSpec]) -> tuple[str, ...]:
    """The metrics of :func:`results_vector`, in its order."""
    return tuple(key for keys in _groups(specs).values() for key in keys)


def results_vector(acc: dict, specs: Mapping[str, MetricSpec]) -> np.ndarray:
    """Finished values of every metric in ``acc`` (fetched from the device) as one float32 numpy vector in
    :func:`result_keys` order, computed on the host: a few divisions, cheaper than compiling a program for them."""
    parts = [np.asarray(AGGREGATIONS[LogMetricMode[mode]]().result(acc[mode])) for mode in _groups(specs)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0,), np.float32)


def concat_values(values: Mapping, specs: Mapping[str, MetricSpec]) -> dict:
    """The CONCAT metrics of one step: kept on device by the loop and joined at epoch end."""
    return {k: v for k, v in values.items() if specs[k].mode == LogMetricMode.CONCAT}
