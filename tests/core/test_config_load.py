"""Loading configs: schema-typed overrides, configs of the original jax_trainer, imports, round trips."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from jax_trainer.config import Config, dump_yaml, load_config, parse, to_dict
from jax_trainer.optimizer import WarmupCosineDecayScheduleConfig

BASE = """
seed: 0
trainer:
  class_name: ImgClassifierTrainer
  model_mode: nnx
  train_epochs: 1
  logger: {log_dir: runs/x, tool_config: null}
model: {class_name: MLPClassifier, hidden_dims: [8]}
optimizer:
  class_name: AdamW
  learning_rate: {class_name: WarmupCosineDecaySchedule, peak_value: 3e-4, warmup_steps: 2}
dataset: {class_name: DigitsDataset, global_batch_size: 64}
"""

# The original jax_trainer's test config (compoconf version), with a zoo model and dataset in place of
# its own classes and the fields SPEC lists for the logger, optimizer and dataset.
ORIGINAL = """
seed: 42
num_gpus: 1
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
model:
  class_name: CNNClassifier
  channels: [16, 32]
  num_classes: 10
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
  transforms:
    clip:
      class_name: GradClipNorm
      max_norm: 1.0
      before_optimizer: true
dataset:
  class_name: CIFAR10Dataset
  data_dir: data/
  global_batch_size: 128
  local_batch_size: 128
  num_workers: 4
  pin_memory: true
  prefetch_factor: 2
  normalize: true
  val_size: 0.1
  split_seed: 42
"""


def write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def assert_round_trips(config: Config) -> None:
    """What --print-config and the run directory's config.yaml hold parses back to the same config."""
    assert parse(yaml.safe_load(dump_yaml(config))) == config


def test_overrides_are_typed_by_the_schema(tmp_path):
    config = load_config(
        write(tmp_path, BASE),
        [
            "trainer.train_epochs=3",
            "optimizer.learning_rate.peak_value=1e-3",  # a string to YAML 1.1; the schema makes it a float
            "trainer.model_mode=linen",
            "trainer.logger.tool_config={class_name: TensorboardToolLogger, version: 7}",  # str field
            "model.hidden_dims.0=16",
            "dataset.val_size=0.25",
            "trainer.max_steps=1e3",
        ],
    )
    assert config.trainer.train_epochs == 3 and type(config.trainer.train_epochs) is int
    assert config.optimizer.learning_rate.peak_value == pytest.approx(1e-3)
    assert type(config.optimizer.learning_rate.peak_value) is float
    assert config.trainer.model_mode == "linen"
    assert config.trainer.logger.tool_config.version == "7"
    assert config.model.hidden_dims == [16]
    assert config.dataset.val_size == 0.25  # `int | float` must not truncate a fraction to 0
    assert config.trainer.max_steps == 1000 and type(config.trainer.max_steps) is int


def test_scientific_notation_in_the_file_is_a_float(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert isinstance(config.optimizer.learning_rate, WarmupCosineDecayScheduleConfig)
    assert config.optimizer.learning_rate.peak_value == pytest.approx(3e-4)
    assert_round_trips(config)


def test_overrides_fill_blocks_that_are_null(tmp_path):
    config = load_config(write(tmp_path, BASE), ["dataset=null", "dataset.class_name=DiabetesDataset"])
    assert config.dataset.class_name == "DiabetesDataset"
    assert load_config(write(tmp_path, BASE), ["dataset=null"]).dataset is None


def test_original_jax_trainer_config_loads_unchanged(tmp_path):
    config = load_config(write(tmp_path, ORIGINAL))
    assert config.num_gpus == 1
    assert config.trainer.model_mode == "nnx"
    assert config.trainer.logger.log_file_verbosity == "warning"
    assert config.trainer.logger.tool_config.version == "0"
    assert config.optimizer.weight_decay.parameter_regex_include == "((.*weight$)|(.*kernel$))"
    schedule = config.optimizer.learning_rate
    assert (schedule.steps, schedule.decay_steps, schedule.warmup_steps) == (1755, 1555, 200)
    assert config.dataset.pin_memory is True and config.dataset.prefetch_factor == 2
    assert_round_trips(config)


def test_user_classes_resolve_through_imports(tmp_path, monkeypatch):
    write(
        tmp_path,
        """
        from dataclasses import dataclass

        import optax
        from compoconf import ConfigInterface, register

        from jax_trainer.optimizer import ScheduleInterface


        @dataclass
        class HalvingConfig(ConfigInterface):
            value: float = 1.0


        @register
        class Halving(ScheduleInterface):
            config: HalvingConfig

            def build(self, total_steps):
                return optax.constant_schedule(self.config.value / 2)
        """,
        name="jt_test_user_schedule.py",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = yaml.safe_load(BASE)
    data["imports"] = ["jt_test_user_schedule"]
    data["optimizer"]["learning_rate"] = {"class_name": "Halving", "value": "4e-3"}
    config = load_config(write(tmp_path, yaml.safe_dump(data)))
    assert config.optimizer.learning_rate.value == pytest.approx(4e-3)
    assert config.imports == ["jt_test_user_schedule"]
    assert to_dict(config)["imports"] == ["jt_test_user_schedule"]  # the run directory can re-import it
    assert_round_trips(config)


# The original configs' callbacks block with the fields SPEC lists. ModelCheckpoint {monitor, mode,
# save_top_k, save_optimizer_state} belongs here too once it is registered.
ORIGINAL_CALLBACKS = """
LearningRateMonitor: {class_name: LearningRateMonitor, every_n_epochs: 1}
JAXProfiler: {class_name: JAXProfiler, every_n_minutes: 60, first_step: 10, profile_n_steps: 20}
GradientSpikeMonitor: {class_name: GradientSpikeMonitor, every_n_epochs: 1, log_to_disk: True, ema_decay: 0.99, threshold: 3.0}
ConfusionMatrixCallback:
  class_name: ConfusionMatrixCallback
  normalize: True
  cmap: Blues
  figsize: [8, 8]
  format: .2f
  dpi: 100
  every_n_epochs: 2
"""


def test_original_callbacks_load(tmp_path):
    data = yaml.safe_load(ORIGINAL)
    data["trainer"]["callbacks"] = yaml.safe_load(ORIGINAL_CALLBACKS)
    config = load_config(write(tmp_path, yaml.safe_dump(data, sort_keys=False)))
    callbacks = config.trainer.callbacks
    assert list(callbacks) == ["LearningRateMonitor", "JAXProfiler", "GradientSpikeMonitor", "ConfusionMatrixCallback"]
    assert callbacks["JAXProfiler"].profile_n_steps == 20 and callbacks["JAXProfiler"].every_n_minutes == 60.0
    assert callbacks["GradientSpikeMonitor"].threshold == 3.0
    assert callbacks["ConfusionMatrixCallback"].figsize == (8.0, 8.0) and callbacks["ConfusionMatrixCallback"].dpi == 100
    assert_round_trips(config)
