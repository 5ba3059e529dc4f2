"""``TrainerModule.predict``: the model's outputs for every example of a loader, in loader order, in eval mode.

The model is applied through the backend's jitted ``bind``; a last batch shorter than the first is padded to the
first batch's size (repeating its last example) so the function compiles once, and the padded rows are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from jax_trainer.parallel.placement import to_host
from jax_trainer.errors import InputError


def predict(trainer, loader) -> Any:
    """Outputs (numpy; a pytree of arrays if the model returns one) with one row per example of ``loader``."""
    if isinstance(loader, Mapping):
        raise InputError(f"predict: expected one loader, got named loaders {list(loader)}; predict one of them.")
    apply = trainer.bind_model()
    parts, size = [], None
    for batch in loader:
        inputs = trainer.batch_to_input(batch)
        n = _rows(inputs)
        size = n if size is None else size
        if n < size:
            inputs = jax.tree.map(lambda x, n=n: _padded(np.asarray(x), size), inputs)
        parts.append(jax.tree.map(lambda out, n=n: to_host(out)[:n], apply(inputs)))
    if not parts:
        raise InputError("predict: the loader yielded no batches.")
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def targets(loader) -> np.ndarray | None:
    """The targets of every example of ``loader`` in order, when its batches carry them (``batch.target``)."""
    found = [np.asarray(batch.target) for batch in loader if getattr(batch, "target", None) is not None]
    return np.concatenate(found) if found else None


def _rows(tree) -> int:
    return int(np.shape(jax.tree.leaves(tree)[0])[0])


def _padded(x: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])
