"""From a parsed config to a trained model: build data, trainer and run directory, then fit or evaluate."""

from __future__ import annotations

from jax_trainer.checkpoint.rundir import write_run_files
from jax_trainer.checkpoint.store import locate
from jax_trainer.config import Config, ConfigError, to_dict
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.trainer.config import TrainerInterface


def build_data(config: Config):
    """The configured dataset and its splits (``train``, ``val``, ``test`` loaders)."""
    if config.dataset is None:
        raise ConfigError("a dataset config is required to run from a config file", "dataset")
    dataset = config.dataset.instantiate(DatasetInterface)
    return dataset, dataset.build()


def build_trainer(config: Config, exmp_batch, write_run_dir: bool = True):
    """Instantiate the configured trainer; for a training run, write the resolved config (enough to
    rebuild it) and the example input next to its logs. Evaluating leaves the run's files as they are."""
    config_dict = to_dict(config)
    trainer = config.trainer.instantiate(
        TrainerInterface,
        model_config=config.model,
        optimizer_config=config.optimizer,
        exmp_input=exmp_batch,
        full_config=config_dict,
    )
    if write_run_dir:
        write_run_files(trainer.log_dir, config_dict, exmp_batch)
    return trainer


def fit(config: Config, ckpt_path: str | None = None) -> dict:
    """``jax-trainer fit``: train on the dataset's splits; returns the metrics ``train_model`` returns. A
    ``ckpt_path`` that names a directory is checked first: a wrong one fails before anything is written."""
    if ckpt_path is not None and str(ckpt_path) not in ("last", "best"):
        locate(ckpt_path)
    dataset, splits = build_data(config)
    trainer = build_trainer(config, dataset.example_batch())
    return trainer.train_model(splits.train, splits.val, splits.test, ckpt_path=ckpt_path)


def evaluate(config: Config, mode: str, ckpt_path: str | None) -> dict:
    """``jax-trainer validate|test``: the metrics of ``ckpt_path``'s weights on the val or test split."""
    dataset, splits = build_data(config)
    loader = splits.val if mode == "val" else splits.test
    if loader is None:
        raise ConfigError(f"{config.dataset.class_name} provides no {mode} split", "dataset")
    trainer = build_trainer(config, dataset.example_batch(), write_run_dir=False)
    status = "failed"
    try:
        if ckpt_path is not None:
            trainer.load_model_checkpoint(ckpt_path)
        metrics = trainer.eval_model(loader, mode, trainer.current_epoch)
        status = "success"
        return metrics
    finally:
        trainer.logger.finalize(status)
