"""From a parsed config to a trained model: build data, trainer and run directory, then fit or evaluate."""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from pathlib import Path

import jax
import numpy as np

from jax_trainer.checkpoint import CheckpointError, resolve
from jax_trainer.checkpoint.rundir import write_run_files
from jax_trainer.checkpoint.store import checkpoint_dir, locate
from jax_trainer.config import Config, ConfigError, to_dict
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.files import probe_writable
from jax_trainer.parallel import initialize, is_main_process
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.trainer.summary import model_summary
from jax_trainer.trainer.tasks import with_target_units


def build_data(config: Config):
    """The configured dataset and its splits (``train``, ``val``, ``test`` loaders). Joins the distributed runtime
    first (``trainer.distributed``): the loaders read this process's share, and nothing may ask jax for devices
    before it."""
    initialize(config.trainer.distributed)
    if config.dataset is None:
        raise ConfigError("a dataset config is required to run from a config file", "dataset")
    dataset = config.dataset.instantiate(DatasetInterface)
    return dataset, dataset.build()


def build_trainer(config: Config, exmp_batch, write_run_dir: bool = True, dataset=None):
    """Instantiate the configured trainer; for a training run, write the resolved config (enough to
    rebuild it) and the example input next to its logs. Evaluating leaves the run's files as they are.
    ``dataset`` (the built dataset) gives a regression trainer its target's units (``target_scale``)."""
    if dataset is not None:
        config = dataclasses.replace(config, trainer=with_target_units(config.trainer, dataset.target_scale()))
    config_dict = to_dict(config)
    trainer = config.trainer.instantiate(
        TrainerInterface,
        model_config=config.model,
        optimizer_config=config.optimizer,
        exmp_input=exmp_batch,
        full_config=config_dict,
    )
    if write_run_dir and is_main_process():
        write_run_files(trainer.log_dir, config_dict, exmp_batch)
    return trainer


def fit(config: Config, ckpt_path: str | None = None) -> dict:
    """``jax-trainer fit``: train on the dataset's splits; returns the metrics ``train_model`` returns. A
    ``ckpt_path`` that names a directory is checked first: a wrong one fails before anything is written."""
    if ckpt_path is not None and str(ckpt_path) not in ("last", "best"):
        locate(ckpt_path)
    dataset, splits = build_data(config)
    probe_run_dir(config.trainer.logger.log_dir)
    trainer = build_trainer(config, dataset.example_batch(), dataset=dataset)
    return trainer.train_model(splits.train, splits.val, splits.test, ckpt_path=ckpt_path)


def probe_run_dir(log_dir) -> None:
    """Refuse a run directory this process cannot write before anything is built: the log folder (process 0 writes
    it) and the checkpoints folder where it already exists (every process writes its shards; it may be a mount of its
    own). A folder that turns read-only later fails at the next checkpoint, as quickly (``checkpoint/store.py``)."""
    if is_main_process():
        probe_writable(log_dir)
    if checkpoint_dir(log_dir).exists():
        probe_writable(checkpoint_dir(log_dir))


def where(config: Config) -> str:
    """Where a finished run left its results: its folder and its best checkpoint (the last one when no
    ``ModelCheckpoint`` monitors a metric), the line ``jax-trainer fit`` ends with."""
    log_dir = config.trainer.logger.log_dir
    try:
        best = resolve("best", log_dir)
        return f"run folder {log_dir}; best checkpoint {best}" if best else f"run folder {log_dir}; no checkpoints"
    except CheckpointError:  # checkpoints without a monitored best
        return f"run folder {log_dir}; last checkpoint {resolve('last', log_dir)} (no monitored best)"


@contextlib.contextmanager
def _with_checkpoint(config: Config, split: str, ckpt_path: str | None):
    """``(trainer, loader)``: the configured trainer with ``ckpt_path``'s weights and the dataset's ``split`` loader;
    the trainer's logs are closed on leaving, with the status of how the block ended."""
    dataset, splits = build_data(config)
    loader = getattr(splits, split)
    if loader is None:
        raise ConfigError(f"{config.dataset.class_name} provides no {split} split", "dataset")
    trainer = build_trainer(config, dataset.example_batch(), write_run_dir=False, dataset=dataset)
    status = "failed"
    try:
        if ckpt_path is not None:
            trainer.load_model_checkpoint(ckpt_path)
        yield trainer, loader
        status = "success"
    finally:
        trainer.logger.finalize(status)


def evaluate(config: Config, mode: str, ckpt_path: str | None) -> dict:
    """``jax-trainer validate|test``: the metrics of ``ckpt_path``'s weights on the val or test split."""
    with _with_checkpoint(config, mode, ckpt_path) as (trainer, loader):
        return trainer.eval_model(loader, mode, trainer.current_epoch)


def predict(config: Config, ckpt_path: str | None, split: str, out: str | Path) -> Path:
    """``jax-trainer predict``: the outputs of ``ckpt_path``'s weights on one split, written to ``out`` (``.npz``:
    ``outputs``, and ``targets`` when the batches carry them)."""
    from jax_trainer.trainer.predict import targets  # pylint: disable=import-outside-toplevel

    with _with_checkpoint(config, split, ckpt_path) as (trainer, loader):
        outputs = trainer.predict(loader)
        arrays = {"outputs": outputs} if isinstance(outputs, np.ndarray) else _named("outputs", outputs)
        found = targets(loader)
        if found is not None:
            arrays["targets"] = found
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **arrays)
        return out


def summary(config: Config) -> str:
    """``jax-trainer summary``: the model summary (parameters, optimizer state) without touching the run directory."""
    with tempfile.TemporaryDirectory() as scratch:
        logger = dataclasses.replace(config.trainer.logger, log_dir=scratch, tool_config=None)
        trainer_config = dataclasses.replace(config.trainer, logger=logger, callbacks={})
        dataset, splits = build_data(config)  # its example batch sizes the model; its length the schedules
        trainer = build_trainer(dataclasses.replace(config, trainer=trainer_config), dataset.example_batch(), False)
        try:
            trainer.init_optimizer(trainer_config.train_epochs, len(splits.train) if hasattr(splits.train, "__len__") else None)
            return model_summary(trainer)
        finally:
            trainer.logger.finalize("success")


def _named(prefix: str, tree) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {f"{prefix}{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}
