"""Original-jax_trainer conveniences: a top-level ``seed`` seeds the run, ``imports:`` resolve next to the config
file, Lightning's hook names reach the same hook points, and a resume with another config says what changed."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import yaml
from compoconf import register

from jax_trainer.callbacks import Callback, CallbackConfig, ModelCheckpointConfig
from jax_trainer.config import load_config, parse
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits, trainer_config

BASE = {
    "trainer": {"class_name": "ImgClassifierTrainer", "enable_progress_bar": False, "logger": {"log_dir": "unset"}},
    "model": {"class_name": "MLPClassifier", "hidden_dims": [8]},
    "optimizer": {"class_name": "AdamW", "learning_rate": 1.0e-3},
    "dataset": {"class_name": "DigitsDataset", "global_batch_size": 64},
}


def test_a_top_level_seed_seeds_trainer_and_dataset_unless_they_say():
    config = parse({**BASE, "seed": 7})
    assert config.trainer.seed == 7 and config.dataset.seed == 7
    explicit = parse({**BASE, "seed": 7, "trainer": {**BASE["trainer"], "seed": 3}})
    assert explicit.trainer.seed == 3 and explicit.dataset.seed == 7


def test_imports_resolve_next_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "jt_side_module.py").write_text("MARK = 1\n")
    (folder / "config.yaml").write_text(yaml.safe_dump({**BASE, "imports": ["jt_side_module"]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))
    load_config(folder / "config.yaml")
    assert "jt_side_module" in sys.modules


@dataclass
class _LightningNamedConfig(CallbackConfig):
    pass


@register
class LightningNamed(Callback):
    config: _LightningNamedConfig
    calls: list = []

    def on_train_start(self):
        self.calls.append("train_start")

    def on_train_epoch_end(self, train_metrics, epoch_idx):
        self.calls.append(f"epoch_end {epoch_idx}")

    def on_train_batch_end(self, step, epoch_idx):
        self.calls.append("batch")

    def on_train_end(self):
        self.calls.append("train_end")


def test_lightning_hook_names_reach_the_same_hook_points(mode, tmp_path):
    data = digits_splits()
    LightningNamed.calls = []
    trainer = classifier(mode, tmp_path, splits=data, train_epochs=2, callbacks={"l": _LightningNamedConfig()})
    trainer.train_model(data.train)
    steps = len(data.train)
    assert LightningNamed.calls[0] == "train_start" and LightningNamed.calls[-1] == "train_end"
    assert LightningNamed.calls.count("batch") == 2 * steps
    assert [c for c in LightningNamed.calls if c.startswith("epoch_end")] == ["epoch_end 1", "epoch_end 2"]


def test_a_resume_with_another_config_names_what_changed(mode, tmp_path, caplog):
    data = digits_splits()
    ckpt = {"ckpt": ModelCheckpointConfig(every_n_epochs=1)}

    def trainer(epochs: int) -> ImgClassifierTrainer:
        config = trainer_config(mode, tmp_path, train_epochs=epochs, callbacks=ckpt)
        full = {"trainer": {"train_epochs": epochs}, "model": {"hidden_dims": [64]}}  # what fit passes: the resolved config
        return ImgClassifierTrainer(config, MLPClassifierConfig(hidden_dims=[64]), AdamWConfig(), next(iter(data.train)),
                                    full_config=full)

    trainer(1).train_model(data.train)
    with caplog.at_level("WARNING", logger="jax_trainer"):
        trainer(2).train_model(data.train, ckpt_path="last")
    assert "written with a different config: trainer.train_epochs: 1 -> 2." in caplog.text
