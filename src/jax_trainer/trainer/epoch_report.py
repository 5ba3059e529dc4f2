"""An epoch's report: its metrics fetched from the device on first read, written once the device has them.

A train epoch ends without waiting for the device: the epoch's results are dispatched, callbacks get an
``EpochMetrics`` that fetches them only if read, and the logger writes them once computed (``Logger.defer`` with a
readiness check). The next epoch's first steps are dispatched meanwhile; a callback that reads the metrics (or
``detect_nans``) makes the fetch happen at the epoch end, as it must.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping

import jax
import numpy as np

from jax_trainer.logger import keys
from jax_trainer.logger.enums import LogMode
from jax_trainer.parallel.placement import tree_to_host
from jax_trainer.trainer import steps as S

LOGGER = logging.getLogger("jax_trainer")
PHASES = {"train": LogMode.TRAIN, "val": LogMode.VAL, "test": LogMode.TEST}


class EpochMetrics(Mapping):
    """An epoch's metrics (scalars as floats, CONCAT values as numpy arrays), fetched on first read."""

    def __init__(self, fetch: Callable[[], dict[str, Any]]):
        self._fetch: Callable[[], dict[str, Any]] | None = fetch
        self._values: dict[str, Any] = {}

    def _loaded(self) -> dict[str, Any]:
        if self._fetch is not None:
            self._values, self._fetch = self._fetch(), None
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._loaded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"EpochMetrics({self._values if self._fetch is None else '<not fetched>'})"


def fetch_epoch(accumulators: S.Accumulators, results: S.Results, mode: str, concats: list, derive: Callable) -> dict:
    """An epoch's metrics from its ``results`` (one batched copy from the device): scalars under ``<mode>/``,
    CONCAT values as numpy arrays, ``derive`` (the trainer's ``derive_metrics``) applied to the scalars."""
    phase = PHASES[mode]
    metrics: dict[str, Any] = {}
    for key, value in zip(accumulators.epoch_keys, results.values()):
        if accumulators.specs[key].log_mode.includes(phase):
            metrics[keys.phase_key(key, mode)] = value
    metrics = derive(metrics)
    host_concats = tree_to_host(concats) if concats else []  # gathered across processes
    for key in {k for _, c in host_concats for k in c}:
        if accumulators.specs[key].log_mode.includes(phase):
            parts = [_unstack(np.asarray(c[key]), n) for n, c in host_concats]
            metrics[keys.phase_key(key, mode)] = np.concatenate(parts)
    return metrics


def write_epoch(logger, metrics: Mapping, mode: str, epoch_idx: int, step: int, ready=None, loader=None) -> None:
    """Epoch scalars to the tools, the JSON file and train.log, deferred until ``ready()`` (see ``Logger.defer``).

    Train epoch values are written under their epoch tags (``train/loss_epoch``, see ``logger/keys.py``); callbacks
    get the plain keys. A named val/test ``loader`` has its own
    epoch file (``metrics/val_noisy_epoch_NNNN.json``).
    """

    def write() -> None:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, float)}
        if mode == keys.TRAIN:
            scalars = {keys.epoch_tag(k): v for k, v in scalars.items()}
        logger.log_epoch_metrics(scalars, epoch_idx, mode, step, loader=loader)
        shown = ", ".join(f"{k}={v:.5g}" for k, v in sorted(scalars.items()))
        LOGGER.info("Epoch %d %s: %s", epoch_idx, keys.epoch_file_stem(mode, loader), shown)

    logger.defer(write, ready=ready)


def _unstack(values: np.ndarray, n_steps: int) -> np.ndarray:
    """CONCAT values of a scanned dispatch carry a leading steps axis: fold it into the batch axis."""
    if n_steps == 1:
        return values.reshape(-1, *values.shape[1:]) if values.ndim else values.reshape(1)
    return values.reshape(-1, *values.shape[2:])
