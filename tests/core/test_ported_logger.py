"""Ported from the original projects' logger tests (kpoeppel/jax_trainer tests/logger/test_backend.py,
test_loggers.py; phlippe/jax_trainer tests/logger/test_logger.py), against this project's names (SPEC.md):
``TensorboardConfig`` is ``TensorboardToolLoggerConfig``, ``WandbConfig`` is ``WandBToolLoggerConfig`` (the peer's
spelling ``WandbToolLogger`` is accepted too), ``flatten_configdict`` is ``flatten_config``. The mocks of the
originals are replaced by reading the files the logger writes. Also the config-error papercut found while porting:
a valid override is not blamed for an error elsewhere in the same section."""

from __future__ import annotations

import json

import pytest
import yaml

from jax_trainer.config import ConfigError, load_config, parse
from jax_trainer.logger.config import LoggerConfig, TensorboardToolLoggerConfig, WandBToolLoggerConfig
from jax_trainer.logger.logger import Logger
from jax_trainer.logger.tools import WandbToolLogger, WandbToolLoggerConfig
from jax_trainer.logger.tools.base import flatten_config
from logging_scenarios import read_events


def test_tensorboard_config_defaults_and_custom():
    config = TensorboardToolLoggerConfig()
    assert (config.save_dir, config.name, config.version) == ("", "", None)
    config = TensorboardToolLoggerConfig(save_dir="logs", name="test_name", version="test_run", use_timestamp_version=False)
    assert (config.save_dir, config.name, config.version, config.use_timestamp_version) == (
        "logs", "test_name", "test_run", False,
    )


def test_wandb_config_has_entity_and_both_spellings_parse():
    config = WandBToolLoggerConfig(save_dir="logs", version="test_run", name="test_name", project="test_project",
                                   entity="test_entity", use_timestamp_version=False)
    assert (config.project, config.entity, config.name, config.version) == ("test_project", "test_entity", "test_name", "test_run")
    assert WandBToolLoggerConfig().entity is None
    for spelling in ("WandBToolLogger", "WandbToolLogger"):
        data = {
            "trainer": {"class_name": "ImgClassifierTrainer", "logger": {"tool_config": {
                "class_name": spelling, "project": "p", "entity": "team", "save_dir": "wb"}}},
            "model": {"class_name": "MLPClassifier"},
            "optimizer": {"class_name": "AdamW"},
        }
        tool = parse(data).trainer.logger.tool_config
        assert isinstance(tool, WandBToolLoggerConfig) and tool.class_name == spelling and tool.entity == "team"
    assert issubclass(WandbToolLogger, object) and WandbToolLoggerConfig().class_name == "WandbToolLogger"


def test_logger_config_defaults_and_custom(tmp_path):
    config = LoggerConfig()
    assert config.log_steps_every == 50 and isinstance(config.tool_config, TensorboardToolLoggerConfig)
    tool = TensorboardToolLoggerConfig(save_dir=str(tmp_path), version="test_run")
    config = LoggerConfig(log_steps_every=100, log_dir=str(tmp_path / "custom_logs"), tool_config=tool)
    assert config.log_steps_every == 100 and config.tool_config == tool


def test_logger_writes_scalars_metrics_and_hparams(tmp_path):
    """The originals checked each call with mocks; here the event file and the metrics JSON are read back."""
    tool = TensorboardToolLoggerConfig(save_dir=str(tmp_path / "tb"), version="test_run")
    logger = Logger(LoggerConfig(log_dir=str(tmp_path / "run"), tool_config=tool))
    logger.log_hparams({"model": {"name": "test_model"}, "data": {"batch_size": 32}})
    logger.log_scalars({"train/loss": 0.5, "train/accuracy": 0.8}, step=10)
    logger.log_epoch_metrics({"val/loss": 0.25, "val/acc": 0.75}, epoch=1, mode="val", step=10)
    logger.finalize("success")
    events = read_events(tmp_path / "tb" / "test_run")
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [(10, 0.5)]
    saved = json.loads((tmp_path / "run" / "metrics" / "val_epoch_0001.json").read_text())
    assert saved["val/loss"] == 0.25 and saved["val/acc"] == 0.75


def test_flatten_config():
    config = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": {"g": 4}}
    flat = flatten_config(config)
    assert flat == {"a": 1, "b.c": 2, "b.d.e": 3, "f.g": 4}


def test_a_valid_override_is_not_blamed_for_an_error_in_the_file(tmp_path):
    """kpoeppel's configs without ``trainer.class_name``: the error names the file, not the valid override."""
    data = {"trainer": {"model_mode": "nnx", "train_epochs": 1}, "model": {"class_name": "MLPClassifier"},
            "optimizer": {"class_name": "AdamW"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path, ["trainer.train_epochs=2"])
    assert info.value.path == "trainer" and "class_name is missing" in str(info.value)
    assert f"(in {path})" in str(info.value) and "set by override" not in str(info.value)
    with pytest.raises(ConfigError) as info:  # an override that creates the section is still named
        load_config(path, ["trainer=null", "trainer.train_epochs=2"])
    assert "set by override" in str(info.value)
