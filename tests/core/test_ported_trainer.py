"""Ported from the original projects' trainer build-and-load tests (kpoeppel/jax_trainer tests/trainer/
test_trainer.py and test_trainer_linen.py, phlippe/jax_trainer tests/trainer/test_trainer.py), for both backends.

Their config file (tests/config/cifar10_classifier.yaml, kpoeppel's compoconf form, below unchanged but for the
paths) is parsed by this project's parser; their models are in tests/ported_models.py. Renames: ``FullConfig`` +
``compoconf.parse_config`` is ``jax_trainer.config.parse``; ``DatasetModule`` is the dataset's ``build()``;
``load_from_checkpoint(ckpt, exmp_input_file=...pkl)`` is ``load_from_checkpoint(ckpt)`` (the example input is the
run's ``exmp_input.npz``, no pickle). The data are CIFAR-10 binary batches written here (random pixels, 8 records
a file), so the originals' accuracy bars (> 0.25 after 5 epochs of real CIFAR-10) are replaced by what the test is
about: the rebuilt trainer's test metrics equal the ones the run wrote. The 2-device DDP variant is covered by
tests/core/test_data_parallel.py and the 8-device example (tests/core/test_examples.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jax_trainer.config import parse
from jax_trainer.datasets import DatasetInterface
from jax_trainer.trainer import ImgClassifierTrainer
from test_examples import fake_cifar10

CIFAR10_CLASSIFIER_YAML = """
seed: 42
num_gpus: 1
imports: [ported_models]
trainer:
  class_name: ImgClassifierTrainer
  train_epochs: 5
  check_val_every_n_epoch: 1
  debug: False
  enable_progress_bar: True
  seed: 42
  log_grad_norm: True
  detect_nans: True
  num_classes: 10
  logger:
    class_name: Logger
    log_dir: tests/checkpoints/BuildTrainerTest/
    log_steps_every: 50
    tool_config:
      class_name: TensorboardToolLogger
      name: ""
      save_dir: tests/checkpoints/BuildTrainerTest/
      use_timestamp_version: false
      version: "0"
    log_file_verbosity: warning
  callbacks:
    ModelCheckpoint:
      class_name: ModelCheckpoint
      monitor: val/acc
      mode: max
      save_top_k: 1
      save_optimizer_state: False
    LearningRateMonitor:
      class_name: LearningRateMonitor
      every_n_epochs: 1
    JAXProfiler:
      class_name: JAXProfiler
      every_n_minutes: 60
      first_step: 10
      profile_n_steps: 20
model:
  class_name: SimpleClassifier
  c_hid: 32
  num_classes: 10
  act_fn: gelu
  batch_norm: True
optimizer:
  b1: 0.9
  b2: 0.999
  class_name: AdamW
  eps: 1.0e-08
  learning_rate:
    class_name: WarmupCosineDecaySchedule
    decay_factor: 0.1
    decay_steps: 1555
    init_value: 0.0
    peak_value: 0.001
    steps: 1755
    warmup_steps: 200
  nesterov: false
  weight_decay:
    class_name: WeightDecay
    mode: whitelist
    parameter_regex_exclude: ""
    parameter_regex_include: ((.*weight$)|(.*kernel$))
    value: 0.01
dataset:
  class_name: CIFAR10Dataset
  data_dir: data/
  global_batch_size: 128
  local_batch_size: 128
  num_workers: 0
"""


def load_and_update_config(tmp_path: Path, mode: str):
    """The original helper: the YAML with its paths in the temporary directory (and, here, tiny data)."""
    config = yaml.safe_load(CIFAR10_CLASSIFIER_YAML)
    log_dir = str(tmp_path / "checkpoints" / "BuildTrainerTest")
    config["trainer"]["logger"]["log_dir"] = log_dir
    config["trainer"]["logger"]["tool_config"]["save_dir"] = log_dir
    config["trainer"].update(train_epochs=1, enable_progress_bar=False)
    config["model"]["c_hid"] = 4
    if mode == "linen":  # as test_trainer_linen.py does
        config["trainer"]["model_mode"] = "linen"
        config["model"]["class_name"] = "SimpleClassifierLinen"
    config["dataset"].update(data_dir=str(fake_cifar10(tmp_path / "data")), global_batch_size=8,
                             local_batch_size=8, val_size=8)
    return parse(config)


@pytest.mark.parametrize("mode", ["nnx", "linen"])
def test_build_trainer_with_loading(tmp_path, mode):
    config = load_and_update_config(tmp_path, mode)
    splits = config.dataset.instantiate(DatasetInterface).build()
    exmp_input = next(iter(splits.train))
    trainer = ImgClassifierTrainer(
        config=config.trainer, model_config=config.model, optimizer_config=config.optimizer, exmp_input=exmp_input,
    )
    before = trainer.test_model(test_loader=splits.test, epoch_idx=0)
    assert 0.0 <= before["test/acc"] <= 1.0
    eval_metrics = trainer.train_model(train_loader=splits.train, val_loader=splits.val, test_loader=splits.test,
                                       num_epochs=trainer.config.train_epochs)
    assert set(eval_metrics) == {1, "test"} and np.isfinite(eval_metrics[1]["val/loss"])

    log_dir = Path(config.trainer.logger.log_dir)
    ckpt_folder = sorted((log_dir / "checkpoints").glob("*"), key=lambda p: int(p.name))[-1]
    loaded = ImgClassifierTrainer.load_from_checkpoint(ckpt_folder)
    assert loaded.config.train_epochs == trainer.config.train_epochs
    assert Path(loaded.log_dir) == log_dir / "eval"  # the original kept log_dir; here the run's own files stay untouched
    test_metrics = loaded.test_model(splits.test)
    orig_test_metric = json.loads((log_dir / "metrics" / "test_epoch_0001.json").read_text())
    np.testing.assert_allclose(test_metrics["test/acc"], orig_test_metric["test/acc"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(test_metrics["test/loss"], orig_test_metric["test/loss"], rtol=1e-5)
