"""Batch containers: registered pytrees so they pass through jit, device_put and sharding."""

from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class SupervisedBatch:
    """An (input, target) pair; ``input`` may itself be a pytree of arrays. ``whole`` (static) marks a batch that
    every process of a multi-process run holds whole, not its share (a short last batch; see ``NumpyLoader``)."""

    input: Any
    target: Any
    whole: bool = field(default=False, metadata={"static": True})

    @property
    def size(self) -> int:
        """Number of examples: the leading dimension of the (first leaf of the) input."""
        return jax.tree_util.tree_leaves(self.input)[0].shape[0]


def unit_pixels(images, mean=None, std=None) -> np.ndarray:
    """Stored 8-bit pixels as float32 in [0, 1], then ``(x - mean) / std`` when given: the per-batch transform of
    the image datasets. In place on one new array: the same float32 operations as ``(x / 255 - mean) / std``,
    without the temporaries."""
    x = np.asarray(images).astype(np.float32)
    x /= 255.0
    if mean is not None:
        x -= mean
        x /= std
    return x
