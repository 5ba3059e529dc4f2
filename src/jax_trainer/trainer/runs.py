"""An epoch's batches as the train loop dispatches them: runs of up to ``steps_per_dispatch`` batches."""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

import jax
import numpy as np


def epoch_runs(loader, epoch_idx: int, start: int, k: int) -> Iterator[tuple[int, Any]]:
    """``(n_steps, batch)`` pairs of epoch ``epoch_idx`` from batch ``start``: runs of up to ``k`` batches stacked
    on a leading axis for one scanned dispatch, a run of one unstacked. The epoch's last run is shorter."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch_idx)
    if hasattr(loader, "iter_runs"):  # the bundled loader gathers a run at once (one copy, not k and a stack)
        if start:
            loader.load_state_dict({"epoch": epoch_idx, "batch_idx": start})
        return loader.iter_runs(k)
    if start and hasattr(loader, "iter_from"):  # a loader that can seek
        batches = loader.iter_from(start)
    else:
        batches = itertools.islice(iter(loader), start, None)
    return _group_batches(batches, k) if k > 1 else ((1, batch) for batch in batches)


def _group_batches(batches: Iterable, k: int):
    """Runs of up to ``k`` same-shaped host batches, stacked for one scanned dispatch (a run of one unstacked)."""
    run: list = []
    for batch in batches:
        if run and _shapes(batch) != _shapes(run[0]):
            yield _stacked(run)
            run = []
        run.append(batch)
        if len(run) == k:
            yield _stacked(run)
            run = []
    if run:
        yield _stacked(run)


def _stacked(run: list) -> tuple[int, Any]:
    if len(run) == 1:
        return 1, run[0]
    return len(run), jax.tree.map(lambda *xs: np.stack(xs), *run)


def _shapes(batch) -> list:
    return [np.shape(leaf) for leaf in jax.tree.leaves(batch)]


def loader_length(loader) -> int | None:
    """``len(loader)``, None for a loader without a length (a stream)."""
    try:
        return len(loader)
    except TypeError:
        return None


def resumed_carry(resume, fresh):
    """The carry of a checkpoint taken inside an epoch (an ``EpochPosition``), restored into the ``fresh`` carry's
    structure; its throughput window restarts (it is this process's)."""
    carry = resume.restore_carry(fresh)
    return carry._replace(metrics=carry.metrics._replace(samples=jax.numpy.zeros_like(fresh.metrics.samples)))
