"""The run directory's rebuild files: ``config.yaml`` and ``exmp_input.npz`` (no pickle).

An example batch is stored leaf by leaf under its pytree path; a :class:`SupervisedBatch`, a dict of
arrays or a bare array round-trip to the same structure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from jax_trainer.checkpoint.errors import CheckpointError
from jax_trainer.datasets.batch import SupervisedBatch

CONFIG_FILE = "config.yaml"
EXAMPLE_FILE = "exmp_input.npz"


def save_example_batch(path: str | Path, batch) -> None:
    """Write ``batch`` (a SupervisedBatch, a dict of arrays or an array) to an ``.npz`` file, leaf by leaf."""
    if isinstance(batch, SupervisedBatch):
        arrays = {"input": batch.input, "target": batch.target}
        kind = "supervised"
    elif isinstance(batch, dict):
        arrays, kind = dict(batch), "dict"
    else:
        arrays, kind = {"input": batch}, "array"
    np.savez(path, __kind__=np.array(kind), **{k: np.asarray(v) for k, v in arrays.items() if v is not None})


def load_example_batch(path: str | Path):
    """Inverse of :func:`save_example_batch` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Example input not found: {path} (written by `fit` into the run directory).")
    with np.load(path, allow_pickle=False) as data:
        kind = str(data["__kind__"])
        arrays = {k: data[k] for k in data.files if k != "__kind__"}
    if kind == "supervised":
        return SupervisedBatch(arrays["input"], arrays.get("target"))
    return arrays if kind == "dict" else arrays["input"]


def write_run_files(log_dir: str | Path, config_dict: dict, exmp_batch) -> None:
    """``config.yaml`` and ``exmp_input.npz`` in ``log_dir``: enough to rebuild the trainer of the run."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / CONFIG_FILE).write_text(yaml.safe_dump(config_dict, sort_keys=False))
    save_example_batch(log_dir / EXAMPLE_FILE, exmp_batch)


def read_config_dict(log_dir: str | Path) -> dict:
    """The resolved config a run directory was trained with."""
    path = Path(log_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found: is {log_dir} a jax_trainer run directory?")
    return yaml.safe_load(path.read_text())
