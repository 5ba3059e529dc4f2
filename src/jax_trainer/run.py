"""From a parsed config to a trained model: build data, trainer and run directory, then fit or evaluate."""

from __future__ import annotations

import logging

from jax_trainer.config import Config, to_dict
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.rundir import write_run_files
from jax_trainer.trainer.config import TrainerInterface

LOGGER = logging.getLogger("jax_trainer")


def build_data(config: Config):
    if config.dataset is None:
        raise ValueError("dataset: a dataset config is required to run from a config file.")
    dataset = config.dataset.instantiate(DatasetInterface)
    return dataset, dataset.build()


def build_trainer(config: Config, exmp_batch):
    """Instantiate the configured trainer and write the resolved config next to its logs."""
    trainer = config.trainer.instantiate(
        TrainerInterface,
        model_config=config.model,
        optimizer_config=config.optimizer,
        exmp_input=exmp_batch,
        full_config=to_dict(config),
    )
    write_run_files(trainer.log_dir, to_dict(config), exmp_batch)
    return trainer


def fit(config: Config, ckpt_path: str | None = None) -> dict:
    _, splits = build_data(config)
    trainer = build_trainer(config, _first_batch(splits.train))
    return trainer.train_model(splits.train, splits.val, splits.test, ckpt_path=ckpt_path)


def evaluate(config: Config, mode: str, ckpt_path: str | None) -> dict:
    _, splits = build_data(config)
    loader = splits.val if mode == "val" else splits.test
    if loader is None:
        raise ValueError(f"dataset: {config.dataset.class_name} provides no {mode} split.")
    trainer = build_trainer(config, _first_batch(splits.train))
    if ckpt_path is not None:
        trainer.load_model_checkpoint(ckpt_path)
    try:
        return trainer.eval_model(loader, mode, trainer.current_epoch)
    finally:
        trainer.logger.finalize("success")


def _first_batch(loader):
    return next(iter(loader))
