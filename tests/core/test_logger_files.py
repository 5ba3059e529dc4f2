"""CSV, epoch JSON, train.log and the Logger's lifecycle, checked against the files on disk."""

import csv
import json
import logging

import compoconf
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jax_trainer.logger.config import CSVToolLoggerConfig, LoggerConfig
from jax_trainer.logger.enums import LogMode
from jax_trainer.logger.logger import Logger


def csv_rows(path):
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["step", "key", "value"]
        return [(int(step), key, float(value)) for step, key, value in reader]


def both_tools(log_dir, verbosity="info"):
    data = {
        "class_name": "Logger",
        "log_dir": str(log_dir),
        "log_file_verbosity": verbosity,
        "tool_config": [{"class_name": "TensorboardToolLogger"}, {"class_name": "CSVToolLogger"}],
    }
    return compoconf.parse_config(LoggerConfig, data)


def test_csv_json_and_tensorboard_hold_the_same_numbers(tmp_path):
    logger = Logger(both_tools(tmp_path))
    logger.log_scalars({"train/loss": 0.1, "train/acc": 0.5}, step=4)
    logger.log_epoch_metrics({"val/loss": 0.2, "val/acc": 0.625}, epoch=3, mode="val", step=8)
    logger.log_epoch_metrics({"test/acc": 0.875}, epoch=3, mode=LogMode.TEST, step=8)
    logger.finalize("success")

    rows = csv_rows(tmp_path / "metrics.csv")
    assert rows == [
        (4, "train/loss", 0.1),
        (4, "train/acc", 0.5),
        (8, "val/loss", 0.2),
        (8, "val/acc", 0.625),
        (8, "test/acc", 0.875),
    ]
    val = json.loads((tmp_path / "metrics" / "val_epoch_0003.json").read_text())
    assert val == {"val/loss": 0.2, "val/acc": 0.625, "epoch": 3, "step": 8}
    assert json.loads((tmp_path / "metrics" / "test_epoch_0003.json").read_text())["test/acc"] == 0.875

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    from_tb = sorted((e.step, tag, e.value) for tag in events.Tags()["scalars"] for e in events.Scalars(tag))
    from_csv = sorted((step, key, float(np.float32(value))) for step, key, value in rows)
    assert from_tb == from_csv  # TensorBoard stores float32


def test_non_scalar_metric_names_the_key(tmp_path):
    logger = Logger(LoggerConfig(log_dir=str(tmp_path), tool_config=CSVToolLoggerConfig()))
    with pytest.raises(ValueError, match="train/per_class"):
        logger.log_scalars({"train/loss": 1.0, "train/per_class": np.zeros(3)}, step=1)
    with pytest.raises(ValueError, match="val/name"):
        logger.log_epoch_metrics({"val/name": "abc"}, epoch=0, mode="val", step=1)
    with pytest.raises(ValueError, match="mode"):
        logger.log_epoch_metrics({"x": 1.0}, epoch=0, mode="eval", step=1)
    logger.log_scalars({"nan_is_allowed": float("nan"), "zero_dim": np.array(2.5)}, step=2)
    logger.finalize("success")
    rows = csv_rows(tmp_path / "metrics.csv")
    assert [key for _, key, _ in rows] == ["nan_is_allowed", "zero_dim"]  # the failed calls wrote nothing
    assert np.isnan(rows[0][2]) and rows[1][2] == 2.5


def test_train_log_respects_verbosity(tmp_path):
    level_before = logging.getLogger("jax_trainer").level
    logger = Logger(both_tools(tmp_path, verbosity="info"))
    log = logging.getLogger("jax_trainer.trainer")
    log.info("an info line")
    log.debug("a debug line")
    logger.finalize("success")
    log.info("after finalize")
    text = (tmp_path / "train.log").read_text()
    assert "an info line" in text
    assert "a debug line" not in text
    assert "after finalize" not in text
    assert "finished: success" in text
    assert logging.getLogger("jax_trainer").level == level_before


def test_finalize_is_idempotent_and_flushes(tmp_path):
    logger = Logger(both_tools(tmp_path))
    logger.log_scalars({"a": 1.0}, step=1)
    logger.finalize("success")
    logger.finalize("success")
    assert csv_rows(tmp_path / "metrics.csv") == [(1, "a", 1.0)]
    with pytest.raises(RuntimeError, match="finalized"):
        logger.log_scalars({"a": 2.0}, step=2)
    with pytest.raises(ValueError, match="status"):
        logger.finalize("done")


def test_no_tool_still_writes_epoch_json(tmp_path):
    logger = Logger(LoggerConfig(log_dir=str(tmp_path / "ignored"), tool_config=None), log_dir=tmp_path / "run")
    logger.log_epoch_metrics({"train/loss": 1.5}, epoch=12, mode="train", step=100)
    logger.finalize("success")
    assert json.loads((tmp_path / "run" / "metrics" / "train_epoch_0012.json").read_text())["train/loss"] == 1.5
    assert not (tmp_path / "ignored").exists()
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_hparams_and_images_in_csv_tool(tmp_path):
    logger = Logger(LoggerConfig(log_dir=str(tmp_path), tool_config=CSVToolLoggerConfig()))
    logger.log_hparams({"model": {"hidden_dims": [4, 4]}, "seed": 3})
    logger.log_image("val/confusion", np.ones((2, 3, 3), np.float32), step=9)
    logger.finalize("success")
    hparams = json.loads((tmp_path / "hparams.json").read_text())
    assert hparams["config"] == {"model": {"hidden_dims": [4, 4]}, "seed": 3}
    assert (tmp_path / "images" / "val_confusion" / "00000009.png").read_bytes().startswith(b"\x89PNG")


def test_resume_truncates_csv_and_stale_epoch_files(tmp_path):
    config = both_tools(tmp_path)
    first = Logger(config)
    first.log_scalars({"loss": 1.0}, step=10)
    first.log_epoch_metrics({"val/acc": 0.5}, epoch=0, mode="val", step=10)
    state = json.loads(json.dumps(first.state_dict()))  # JSON-able
    first.log_scalars({"loss": 2.0}, step=20)
    first.log_epoch_metrics({"val/acc": 0.6}, epoch=1, mode="val", step=20)
    first.finalize("interrupted")

    second = Logger(config)
    second.load_state_dict(state)
    assert second.state_dict() == {"last_step": 10}
    second.log_scalars({"loss": 3.0}, step=20)
    second.finalize("success")
    assert csv_rows(tmp_path / "metrics.csv") == [(10, "loss", 1.0), (10, "val/acc", 0.5), (20, "loss", 3.0)]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["val_epoch_0000.json"]


def test_original_jax_trainer_logger_block_parses(tmp_path):
    data = {
        "class_name": "Logger",
        "log_dir": str(tmp_path),
        "log_steps_every": 50,
        "tool_config": {
            "class_name": "TensorboardToolLogger",
            "name": "",
            "save_dir": str(tmp_path),
            "use_timestamp_version": False,
            "version": "0",
        },
        "log_file_verbosity": "warning",
    }
    logger = Logger(compoconf.parse_config(LoggerConfig, data))
    logger.log_scalars({"a": 1.0}, step=0)
    logger.finalize("success")
    assert list((tmp_path / "0").glob("events.out.tfevents.*"))
