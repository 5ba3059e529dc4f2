"""From a parsed config to a trained model: build data, trainer and run directory, then fit or evaluate."""

from __future__ import annotations

from jax_trainer.config import Config, ConfigError, to_dict
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.rundir import write_run_files
from jax_trainer.trainer.config import TrainerInterface

def build_data(config: Config):
    if config.dataset is None:
        raise ConfigError("a dataset config is required to run from a config file", "dataset")
    dataset = config.dataset.instantiate(DatasetInterface)
    return dataset, dataset.build()


def build_trainer(config: Config, exmp_batch, write_run_dir: bool = True):
    """Instantiate the configured trainer; for a training run, write the resolved config (enough to
    rebuild it) and the example input next to its logs. Evaluating leaves the run's files as they are."""
    trainer = config.trainer.instantiate(
        TrainerInterface,
        model_config=config.model,
        optimizer_config=config.optimizer,
        exmp_input=exmp_batch,
        full_config=to_dict(config),
    )
    if write_run_dir:
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
        raise ConfigError(f"{config.dataset.class_name} provides no {mode} split", "dataset")
    trainer = build_trainer(config, _first_batch(splits.train), write_run_dir=False)
    if ckpt_path is not None:
        trainer.load_model_checkpoint(ckpt_path)
    try:
        return trainer.eval_model(loader, mode, trainer.current_epoch)
    finally:
        trainer.logger.finalize("success")


def _first_batch(loader):
    return next(iter(loader))
