"""Logging behaviours every backend must show; tests/linen and tests/nnx import these tests and provide the
``mode`` fixture (tests/core uses the helpers).

`AllModesTrainer` is a tiny regressor whose loss function returns a metric in every LogMetricMode, LogFreq
and LogMode. Every metric is computed from the batch alone (``v = mean(input[:, 0])``), so numpy can
recompute what the trainer must log from the same batches.
"""

from __future__ import annotations

import csv
import json

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hp_metadata

from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.datasets import SupervisedBatch
from jax_trainer.logger.config import CSVToolLoggerConfig, LoggerConfig, TensorboardToolLoggerConfig
from jax_trainer.logger.enums import LogFreq, LogMetricMode, LogMode
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig, TrainerConfig, TrainerModule
from jax_trainer.zoo.configs import MLPClassifierConfig, MLPRegressorConfig
from trainer_helpers import digits_splits

SCALAR_MODES = [m for m in LogMetricMode if m != LogMetricMode.CONCAT]
MODE_METRICS = [f"m_{m.name.lower()}" for m in SCALAR_MODES]
# Uneven batch sizes, but few distinct shapes: each shape compiles the step once.
TRAIN_SIZES, VAL_SIZES, TEST_SIZES = [3, 5, 5, 3, 3], [4, 2, 4], [2, 4]
# Per-batch centres of input[:, 0]: train steps 1-2 negative, 3-4 positive, so a window's MAX is negative
# and the next one's MIN positive (an accumulator starting from 0 would be wrong in both).
TRAIN_CENTRES = [-2.0, -1.0, 1.5, 2.0, -0.5]


def reference(mode: LogMetricMode, values, weights) -> float:
    """Each aggregation written the obvious way in float64; weights are batch sizes."""
    values, weights = np.asarray(values, np.float64), np.asarray(weights, np.float64)
    mean = np.sum(values * weights) / np.sum(weights)
    return float({
        LogMetricMode.MEAN: mean,
        LogMetricMode.SUM: np.sum(values),
        LogMetricMode.SINGLE: values[-1],
        LogMetricMode.MAX: np.max(values),
        LogMetricMode.MIN: np.min(values),
        LogMetricMode.STD: np.sqrt(np.sum(weights * (values - mean) ** 2) / np.sum(weights)),
    }[mode])


def batch_metrics(batch) -> dict:
    """A metric in every mode, frequency and phase; all of them functions of the batch only."""
    column = batch.input[:, 0]
    v = jnp.mean(column)
    metrics = {f"m_{m.name.lower()}": {"value": v, "mode": m} for m in SCALAR_MODES}
    metrics["m_mean"] = v  # a bare value means MEAN, every frequency, every phase
    metrics["m_single"] = {"value": v, "mode": "single"}  # enum names are accepted as strings
    metrics["m_cat"] = {"value": column, "mode": LogMetricMode.CONCAT}
    metrics["step_only"] = {"value": v, "log_freq": LogFreq.STEP}
    metrics["epoch_only"] = {"value": v, "log_freq": LogFreq.EPOCH}
    for phase in (LogMode.TRAIN, LogMode.VAL, LogMode.TEST, LogMode.EVAL):
        metrics[f"{phase.name.lower()}_only"] = {"value": v, "log_mode": phase}
    return metrics


class AllModesTrainer(TrainerModule):
    """MSE of a tiny MLP regressor plus `metrics(batch)`; both backends' user hooks are written out."""

    def metrics(self, batch) -> dict:
        return batch_metrics(batch)

    def loss_function(self, model, batch, train: bool = True):
        preds = self.model_apply(model, batch.input, train)
        return jnp.mean((preds - batch.target) ** 2), self.metrics(batch)

    def loss_function_linen(self, params, state, batch, rng, train: bool = True):
        preds, mutables = self.model_linen_apply(params, state, batch.input, rng, train)
        return jnp.mean((preds - batch.target) ** 2), (mutables, self.metrics(batch))


class Recorder(Callback):
    """Keeps what the epoch-end hooks receive (CONCAT arrays included)."""

    def __init__(self):
        super().__init__(CallbackConfig())
        self.seen: dict = {}

    def on_training_epoch_end(self, train_metrics, epoch_idx):
        self.seen["train", epoch_idx] = train_metrics

    def on_validation_epoch_end(self, eval_metrics, epoch_idx):
        self.seen["val", epoch_idx] = eval_metrics

    def on_test_epoch_end(self, test_metrics, epoch_idx):
        self.seen["test", epoch_idx] = test_metrics


def make_batches(sizes, seed: int, centres=None) -> list[SupervisedBatch]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=len(sizes)) if centres is None else centres
    batches = []
    for size, centre in zip(sizes, centres):
        x = rng.normal(size=(size, 3)).astype(np.float32)
        x[:, 0] += np.float32(centre)
        batches.append(SupervisedBatch(x, rng.normal(size=(size,)).astype(np.float32)))
    return batches


def per_batch_values(batches) -> tuple[np.ndarray, np.ndarray]:
    """(v, batch size) of each batch, v computed in float64 on the host."""
    values = [b.input[:, 0].astype(np.float64).mean() for b in batches]
    return np.array(values), np.array([len(b.target) for b in batches])


def log_windows(steps_per_epoch: int, epochs: int, log_every: int) -> dict[int, list[int]]:
    """Global log step -> indices (into the epoch's batches) the window covers. A window closes when the global
    step is a multiple of ``log_every`` and starts afresh each epoch; an epoch's leftover steps are epoch-only."""
    windows, step = {}, 0
    for _ in range(epochs):
        current: list[int] = []
        for index in range(steps_per_epoch):
            step += 1
            current.append(index)
            if step % log_every == 0:
                windows[step], current = current, []
    return windows


def all_modes_trainer(mode: str, log_dir, tools=None, trainer_cls=AllModesTrainer, **kwargs) -> AllModesTrainer:
    kwargs.setdefault("enable_progress_bar", False)
    logger = LoggerConfig(
        log_dir=str(log_dir),
        log_steps_every=kwargs.pop("log_steps_every", 2),
        log_file_verbosity=kwargs.pop("log_file_verbosity", "info"),
        tool_config=tools if tools is not None else [TensorboardToolLoggerConfig(), CSVToolLoggerConfig()],
    )
    config = TrainerConfig(model_mode=mode, logger=logger, **kwargs)
    model, optimizer = MLPRegressorConfig(hidden_dims=[4]), AdamWConfig(learning_rate=1e-2)
    return trainer_cls(config, model, optimizer, make_batches([2], 9)[0])


def read_csv(path) -> dict[tuple[int, str], float]:
    """(step, key) -> value; a key written twice at one step is an error."""
    rows: dict = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = int(row["step"]), row["key"]
            assert key not in rows, f"{key} written twice"
            rows[key] = float(row["value"])
    return rows


def read_events(path) -> EventAccumulator:
    events = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


# ---------------------------------------------------------------------------------------------- scenarios
def test_every_mode_matches_numpy(mode, tmp_path):
    """Two epochs of uneven batches, log_steps_every=2: step windows, epoch files and callbacks vs numpy."""
    train = make_batches(TRAIN_SIZES, 0, TRAIN_CENTRES)
    val, test = make_batches(VAL_SIZES, 1), make_batches(TEST_SIZES, 2)
    trainer = all_modes_trainer(mode, tmp_path, train_epochs=2)
    recorder = Recorder()
    trainer.callbacks.append(recorder)
    results = trainer.train_model(train, val, test)
    rows = read_csv(tmp_path / "metrics.csv")
    v, n = per_batch_values(train)

    windows = log_windows(len(train), 2, 2)
    assert sorted(windows) == [2, 4, 6, 8, 10]  # 6 is a one-step window: windows restart with the epoch
    trainer_keys = {"train/loss", "train/step_time", "train/samples_per_sec", "optimizer/lr"}
    step_names = MODE_METRICS + ["step_only", "train_only"]
    for step, idx in windows.items():
        logged = {k for (s, k) in rows if s == step and not (k.endswith("_epoch") or k.startswith(("val/", "test/")))}
        logged.discard("train/epoch_time")
        assert logged == {f"train/{name}" for name in step_names} | trainer_keys, step
        for metric_mode, name in zip(SCALAR_MODES, MODE_METRICS):
            expected = reference(metric_mode, v[idx], n[idx])
            assert rows[step, f"train/{name}"] == pytest.approx(expected, rel=1e-5, abs=1e-6), (step, name)
        assert rows[step, "train/step_only"] == pytest.approx(reference(LogMetricMode.MEAN, v[idx], n[idx]), rel=1e-5)
        assert rows[step, "optimizer/lr"] == pytest.approx(1e-2)
        window_time = rows[step, "train/step_time"] * len(idx)
        assert rows[step, "train/samples_per_sec"] * window_time == pytest.approx(n[idx].sum())
    assert rows[2, "train/m_max"] < 0 < rows[4, "train/m_min"]
    assert {s for (s, _) in rows} == {2, 4, 5, 6, 8, 10}, "only log points and epoch ends are written"

    epoch_names = MODE_METRICS + ["epoch_only", "train_only", "loss"]
    for epoch in (1, 2):
        saved = json.loads((tmp_path / "metrics" / f"train_epoch_{epoch:04d}.json").read_text())
        expected_keys = {f"train/{name}_epoch" for name in epoch_names} | {"optimizer/lr_epoch", "train/epoch_time"}
        assert set(saved) == expected_keys | {"epoch", "step"}
        assert (saved["epoch"], saved["step"]) == (epoch, 5 * epoch)
        for metric_mode, name in zip(SCALAR_MODES, MODE_METRICS):
            assert saved[f"train/{name}_epoch"] == pytest.approx(reference(metric_mode, v, n), rel=1e-5), name
        assert saved["train/epoch_time"] > 0
        handed = recorder.seen["train", epoch]
        np.testing.assert_array_equal(handed["train/m_cat"], np.concatenate([b.input[:, 0] for b in train]))
        assert handed["train/m_std"] == saved["train/m_std_epoch"]
        assert handed["train/epoch_time"] == saved["train/epoch_time"]

    for phase, batches, own, other in (("val", val, "val_only", "test_only"), ("test", test, "test_only", "val_only")):
        v_eval, n_eval = per_batch_values(batches)
        saved = json.loads((tmp_path / "metrics" / f"{phase}_epoch_0002.json").read_text())
        names = MODE_METRICS + ["step_only", "epoch_only", "eval_only", own, "loss"]
        assert set(saved) == {f"{phase}/{name}" for name in names} | {"epoch", "step"}, phase
        for metric_mode, name in zip(SCALAR_MODES, MODE_METRICS):
            expected = reference(metric_mode, v_eval, n_eval)
            assert saved[f"{phase}/{name}"] == pytest.approx(expected, rel=1e-5), (phase, name)
        assert saved[f"{phase}/{own}"] == pytest.approx(reference(LogMetricMode.MEAN, v_eval, n_eval), rel=1e-5)
        handed = recorder.seen[phase, 2]
        assert f"{phase}/{other}" not in handed and f"{phase}/train_only" not in handed
        np.testing.assert_array_equal(handed[f"{phase}/m_cat"], np.concatenate([b.input[:, 0] for b in batches]))
    assert set(results) == {1, 2, "test"}
    assert "val/val_only" in results[2] and "val/test_only" not in results[2]
    assert "test/test_only" in results["test"] and "test/val_only" not in results["test"]
    assert all(isinstance(x, float) for r in results.values() for x in r.values()), "CONCAT values are not returned"
    assert not any("m_cat" in k for (_, k) in rows), "CONCAT values are never written as scalars"


def test_tensorboard_csv_and_json_agree(mode, tmp_path):
    """A digits run with TensorBoard and CSV at once: expected tags at expected steps, the same numbers in
    every file, the config in the hparams plugin and one train.log line per epoch and phase."""
    splits = digits_splits(batch_size=256)
    logger = LoggerConfig(
        log_dir=str(tmp_path), log_steps_every=2, tool_config=[TensorboardToolLoggerConfig(), CSVToolLoggerConfig()]
    )
    config = ImgClassifierTrainerConfig(
        model_mode=mode, train_epochs=2, log_grad_norm=True, enable_progress_bar=False, logger=logger
    )
    model, optimizer = MLPClassifierConfig(hidden_dims=[16]), AdamWConfig(learning_rate=1e-3)
    trainer = ImgClassifierTrainer(config, model, optimizer, next(iter(splits.train)))
    steps_per_epoch = len(splits.train)
    results = trainer.train_model(splits.train, splits.val, splits.test)
    events, rows = read_events(tmp_path), read_csv(tmp_path / "metrics.csv")

    log_steps = [s for s in range(1, 2 * steps_per_epoch + 1) if s % 2 == 0]
    epoch_ends = [steps_per_epoch, 2 * steps_per_epoch]
    step_tags = ["train/loss", "train/acc", "optimizer/lr", "optimizer/grad_global_norm", "train/step_time"]
    epoch_tags = ["train/loss_epoch", "train/acc_epoch", "train/epoch_time", "val/loss", "val/acc"]
    expected = {tag: log_steps for tag in step_tags + ["train/samples_per_sec"]}
    expected.update({tag: epoch_ends for tag in epoch_tags})
    expected.update({"test/loss": epoch_ends[-1:], "test/acc": epoch_ends[-1:]})
    tags = set(events.Tags()["scalars"])
    assert set(expected) <= tags, set(expected) - tags
    for tag, steps in expected.items():
        assert [e.step for e in events.Scalars(tag)] == steps, tag
    for tag in tags:
        for event in events.Scalars(tag):
            assert event.value == np.float32(rows[event.step, tag]), (tag, event.step)
    assert len(rows) == sum(len(events.Scalars(tag)) for tag in tags)
    files = {"train_epoch_0002": epoch_ends[1], "val_epoch_0001": epoch_ends[0], "test_epoch_0002": epoch_ends[1]}
    for name, step in files.items():
        saved = json.loads((tmp_path / "metrics" / f"{name}.json").read_text())
        assert saved.pop("step") == step
        saved.pop("epoch")
        assert saved == {k: rows[step, k] for k in saved}, name
    assert results[2]["val/acc"] == rows[epoch_ends[1], "val/acc"]

    content = events.PluginTagToContent("hparams")
    start = hp_metadata.parse_session_start_info_plugin_data(content[hp_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["trainer.model_mode"].string_value == mode
    assert start.hparams["trainer.logger.log_steps_every"].number_value == 2
    assert start.hparams["model.hidden_dims"].string_value == "[16]"
    assert start.hparams["optimizer.learning_rate"].number_value == pytest.approx(1e-3)
    assert hp_metadata.SESSION_END_INFO_TAG in content

    log = (tmp_path / "train.log").read_text()
    for line in ("Epoch 1 train:", "Epoch 1 val:", "Epoch 2 train:", "Epoch 2 val:", "Epoch 2 test:"):
        assert log.count(line) == 1, line
    assert f"val/acc={results[2]['val/acc']:.5g}" in log


def test_bad_metrics_fail_naming_the_metric(mode, tmp_path):
    """A per-example value in a scalar mode, or an unknown mode string, stops training before any step."""
    cases = {  # name -> (metric with "column" standing for the per-example input column, message fragments)
        "per_example": ({"value": "column", "mode": LogMetricMode.MAX}, ["MAX", "CONCAT"]),
        "typo": ({"value": 1.0, "mode": "avg"}, ["'avg'", "MEAN"]),
        "phase": ({"value": 1.0, "log_mode": "validation"}, ["'validation'", "log_mode"]),
    }
    for name, (metric, fragments) in cases.items():

        class BadTrainer(AllModesTrainer):
            def metrics(self, batch, name=name, metric=metric):
                value = batch.input[:, 0] if metric["value"] == "column" else metric["value"]
                return {**batch_metrics(batch), name: {**metric, "value": value}}

        trainer = all_modes_trainer(mode, tmp_path / name, trainer_cls=BadTrainer)
        with pytest.raises(ValueError) as info:
            trainer.train_model(make_batches(TRAIN_SIZES, 0))
        for fragment in [f"'{name}'"] + fragments:
            assert fragment in str(info.value), (fragment, str(info.value))
        assert trainer.global_step == 0

