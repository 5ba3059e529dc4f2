"""Small builders shared by the linen and nnx test folders (tiny models, few steps)."""

from __future__ import annotations

import jax
import numpy as np

from jax_trainer.datasets import DiabetesConfig, DiabetesDataset, DigitsConfig, DigitsDataset, SupervisedBatch
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.zoo.configs import MLPClassifierConfig


def digits_splits(batch_size: int = 64, **kwargs):
    return DigitsDataset(DigitsConfig(global_batch_size=batch_size, val_size=0.15, **kwargs)).build()


def diabetes_splits(batch_size: int = 32):
    return DiabetesDataset(DiabetesConfig(global_batch_size=batch_size, val_size=0.2)).build()


def trainer_config(mode: str, log_dir, cls=ImgClassifierTrainerConfig, **kwargs):
    kwargs.setdefault("enable_progress_bar", False)
    logger = LoggerConfig(log_dir=str(log_dir), log_steps_every=kwargs.pop("log_steps_every", 50))
    return cls(model_mode=mode, logger=logger, **kwargs)


def classifier(mode: str, log_dir, model=None, optimizer=None, splits=None, trainer_cls=ImgClassifierTrainer, **kwargs):
    splits = splits or digits_splits()
    return trainer_cls(
        trainer_config(mode, log_dir, **kwargs),
        model or MLPClassifierConfig(hidden_dims=[64]),
        optimizer or AdamWConfig(learning_rate=1e-3),
        next(iter(splits.train)),
    )


def fixed_batches(n: int, batch_size: int = 32) -> list[SupervisedBatch]:
    """The first ``n`` digits batches in a fixed order (cycled), for step-by-step comparisons."""
    loader = digits_splits(batch_size).val
    batches = [b for b in loader if b.size == batch_size]
    return [batches[i % len(batches)] for i in range(n)]


def model_weights(trainer) -> dict[str, np.ndarray]:
    """The trainer's model arrays of floating dtype (parameters, batch statistics) by path, through the backend's
    checkpoint tree (rng state left out: it counts calls, not what was learnt)."""
    tree = trainer.backend.model_state_dict(trainer.model_state)
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in leaves
        if np.issubdtype(np.asarray(leaf).dtype, np.floating)
    }


def subprocess_env(tmp_path) -> dict:
    """The environment for a test's jax_trainer subprocesses: a shared persistent compilation cache (the same
    programs compile once, not per run) and tests/ on the module path (for configs that import test modules)."""
    import os  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel

    cache = {
        "JAX_COMPILATION_CACHE_DIR": str(Path(tmp_path) / "xla_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
    }
    return {**os.environ, **cache}
