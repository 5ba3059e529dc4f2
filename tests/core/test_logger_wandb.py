"""W&B tool in offline mode (skipped when the optional ``wandb`` extra is not installed)."""

import logging

import numpy as np
import pytest

from jax_trainer.logger.config import LoggerConfig, WandBToolLoggerConfig
from jax_trainer.logger.logger import Logger


def test_offline_run_writes_its_files(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    tool = WandBToolLoggerConfig(project="jt-test", name="offline", save_dir=str(tmp_path / "wb"))
    logger = Logger(LoggerConfig(log_dir=str(tmp_path / "run"), tool_config=tool))
    logger.log_hparams({"seed": 1, "model": {"hidden_dims": [4]}})
    logger.log_scalars({"train/loss": 0.5}, step=1)
    logger.log_image("img", np.zeros((2, 2, 3), np.uint8), step=1)
    logger.finalize("success")
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb"))


def test_missing_wandb_gives_install_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ImportError, match=r"jax_trainer\[wandb\]"):
        Logger(LoggerConfig(log_dir=str(tmp_path), tool_config=WandBToolLoggerConfig()))
    from jax_trainer.logger.text_log import TextLogHandler

    own = [
        h
        for h in logging.getLogger("jax_trainer").handlers
        if isinstance(h, TextLogHandler) and str(tmp_path) in h.baseFilename
    ]
    assert not own, "the failed Logger left its train.log handler attached"
