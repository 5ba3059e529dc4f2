"""Deterministic random train/held-out splits of row arrays (in memory, or RowSources left on disk)."""

import jax
import numpy as np

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.sources import RowSource


def split_count(size: float, n: int, name: str) -> int:
    """Number of examples ``size`` stands for: a fraction of ``n`` when below 1, else a count."""
    count = int(round(size * n)) if size < 1 else int(size)
    if not 0 <= count < n:
        raise DataError(f"{name}={size} leaves no training data out of {n} examples")
    return count


def take(arrays: SupervisedBatch, rows: np.ndarray) -> SupervisedBatch:
    """The rows ``rows`` of every array: copied from numpy arrays, a lazy selection of a RowSource (read nothing)."""
    return jax.tree_util.tree_map(lambda a: a.subset(rows) if isinstance(a, RowSource) else a[rows], arrays)


def random_split(
    arrays: SupervisedBatch, sizes: dict[str, float], seed: int
) -> tuple[SupervisedBatch, list[SupervisedBatch | None]]:
    """Hold out ``sizes`` (name -> fraction or count) at random, deterministically in ``seed``.

    Returns the remaining training arrays and one held-out part per entry (None for size 0).
    """
    n = arrays.size
    counts = [split_count(size, n, name) for name, size in sizes.items()]
    if sum(counts) >= n:
        raise DataError(f"{sizes} leave no training data out of {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for count in counts:
        parts.append(take(arrays, np.sort(perm[start : start + count])) if count else None)
        start += count
    return take(arrays, np.sort(perm[start:])), parts
