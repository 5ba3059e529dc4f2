"""Built-in callbacks driven hook by hook with scripted inputs (no backend, no training loop)."""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import compoconf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from compoconf import ConfigInterface
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jax_trainer.callbacks import (
    ConfusionMatrixCallback,
    ConfusionMatrixConfig,
    DisableGC,
    DisableGCConfig,
    EarlyStopping,
    EarlyStoppingConfig,
    ExponentialValuePolicyConfig,
    GradientSpikeMonitor,
    GradientSpikeMonitorConfig,
    JAXProfiler,
    JAXProfilerConfig,
    LinearValuePolicyConfig,
    ValuePolicyInterface,
)
from jax_trainer.callbacks.grad_spike import MAX_SPIKES_PER_EPOCH
from jax_trainer.callbacks.value_policies import policy_values
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.logger.logger import Logger
from jax_trainer.trainer import ImgClassifierTrainerConfig, TrainerInterface
from jax_trainer.trainer.steps import StepInfo


@pytest.fixture
def trainer(tmp_path):
    """The part of a trainer the callbacks touch: log dir, logger, counters, config, state."""
    logger = Logger(LoggerConfig(log_dir=str(tmp_path)))
    fake = SimpleNamespace(
        log_dir=Path(tmp_path), logger=logger, global_step=0, current_epoch=0, should_stop=False,
        config=SimpleNamespace(num_classes=3), state=jnp.zeros(3),
    )
    yield fake
    logger.finalize("success")


# ------------------------------------------------------------------------------------------------ EarlyStopping
def _drive(callback, values, key="val/loss", start_epoch=1):
    """Feed one validation result per epoch; return the epoch at which the trainer was told to stop."""
    for epoch, value in enumerate(values, start=start_epoch):
        callback.on_validation_epoch_end({key: value, "val/preds": np.zeros(4)}, epoch)
        if callback.trainer.should_stop:
            return epoch
    return None


def test_early_stopping_min_mode_stops_after_patience(trainer):
    callback = EarlyStopping(EarlyStoppingConfig(monitor="val/loss", mode="min", patience=2), trainer)
    assert _drive(callback, [1.0, 0.9, 0.95, 0.91, 0.5]) == 4
    assert callback.best == 0.9 and callback.wait == 2 and callback.stopped_epoch == 4


def test_early_stopping_max_mode_min_delta_and_nan(trainer):
    callback = EarlyStopping(EarlyStoppingConfig(monitor="val/acc", mode="max", patience=2, min_delta=0.05), trainer)
    # 0.54 is not > 0.5 + 0.05; 0.56 is; NaN never improves.
    assert _drive(callback, [0.5, 0.54, 0.56, 0.6, float("nan")], key="val/acc") == 5
    assert callback.best == 0.56


def test_early_stopping_state_survives_json_round_trip(trainer):
    values = [1.0, 0.8, 0.85, 0.9, 0.7, 0.75, 0.76, 0.77]
    reference = EarlyStopping(EarlyStoppingConfig(patience=3), trainer)
    expected = _drive(reference, values)
    assert expected == 8
    trainer.should_stop = False
    first = EarlyStopping(EarlyStoppingConfig(patience=3), trainer)
    assert _drive(first, values[:5]) is None
    state = json.loads(json.dumps(first.state_dict()))
    resumed = EarlyStopping(EarlyStoppingConfig(patience=3), trainer)
    resumed.load_state_dict(state)
    assert _drive(resumed, values[5:], start_epoch=6) == expected
    assert resumed.state_dict() == reference.state_dict()


def test_early_stopping_unknown_monitor_lists_available_keys(trainer):
    callback = EarlyStopping(EarlyStoppingConfig(monitor="val/accuracy"), trainer)
    with pytest.raises(ValueError, match="val/accuracy") as err:
        callback.on_validation_epoch_end({"val/acc": 0.5, "val/loss": 1.0, "val/preds": np.zeros(3)}, 1)
    assert "['val/acc', 'val/loss']" in str(err.value)


def test_early_stopping_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        EarlyStoppingConfig(mode="maximum")


# ------------------------------------------------------------------------------------------------ configs
@dataclass
class _Top(ConfigInterface):
    trainer: TrainerInterface.cfgtype = None


def test_original_callback_fields_and_value_policies_parse():
    data = {
        "class_name": "ImgClassifierTrainer",
        "callbacks": {
            "LearningRateMonitor": {"class_name": "LearningRateMonitor", "every_n_epochs": 1},
            "JAXProfiler": {
                "class_name": "JAXProfiler", "every_n_minutes": 60, "first_step": 10, "profile_n_steps": 20,
            },
            "GradientSpikeMonitor": {
                "class_name": "GradientSpikeMonitor", "every_n_epochs": 1, "log_to_disk": True, "ema_decay": 0.99,
                "threshold": 3.0,
            },
            "ConfusionMatrixCallback": {
                "class_name": "ConfusionMatrixCallback", "normalize": True, "cmap": "Blues", "figsize": [4, 4],
                "format": ".1%", "dpi": 50, "every_n_epochs": 2,
            },
            "EarlyStopping": {"class_name": "EarlyStopping", "monitor": "val/acc", "mode": "max", "patience": 4},
            "DisableGC": {"class_name": "DisableGC"},
        },
        "value_policies": {
            "aux_weight": {"class_name": "ExponentialValuePolicy", "init_value": 2.0, "decay_rate": 0.5},
        },
    }
    config = compoconf.parse_config(_Top, {"trainer": data}).trainer
    assert isinstance(config, ImgClassifierTrainerConfig)
    assert config.callbacks["ConfusionMatrixCallback"].figsize == (4.0, 4.0)
    assert config.callbacks["GradientSpikeMonitor"].threshold == 3.0
    assert config.value_policies["aux_weight"].init_value == 2.0
    dumped = compoconf.dump_config(config)
    assert compoconf.parse_config(_Top, {"trainer": dumped}).trainer == config


def test_value_policy_names_must_be_keyword_arguments():
    with pytest.raises(ValueError, match="train"):
        ImgClassifierTrainerConfig(value_policies={"train": ExponentialValuePolicyConfig()})
    with pytest.raises(ValueError, match="identifier"):
        ImgClassifierTrainerConfig(value_policies={"aux-weight": ExponentialValuePolicyConfig()})


def test_value_policies_per_epoch():
    configs = {
        "exp": ExponentialValuePolicyConfig(init_value=1.0, decay_rate=0.5, end_value=0.2),
        "lin": LinearValuePolicyConfig(init_value=0.0, end_value=1.0, transition_epochs=4),
    }
    policies = {name: config.instantiate(ValuePolicyInterface) for name, config in configs.items()}
    table = [{k: float(v) for k, v in policy_values(policies, epoch).items()} for epoch in range(0, 7)]
    assert [row["exp"] for row in table] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.2, 0.2, 0.2])
    assert [row["lin"] for row in table] == pytest.approx([0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    value = policy_values(policies, 2)["exp"]
    assert isinstance(value, np.ndarray) and value.dtype == np.float32 and value.shape == ()


# ------------------------------------------------------------------------------------------------ ConfusionMatrix
def _images(log_dir) -> dict:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    accumulator.Reload()
    return {tag: accumulator.Images(tag) for tag in accumulator.Tags()["images"]}


def test_confusion_matrix_counts_and_image(trainer):
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    preds = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    expected = np.zeros((3, 3), np.int64)
    for true, pred in zip(labels, preds):
        expected[true, pred] += 1
    callback = ConfusionMatrixCallback(ConfusionMatrixConfig(figsize=(3, 3), dpi=40), trainer)
    trainer.global_step = 12
    callback.on_validation_epoch_end({"val/acc": 0.5, "val/preds": preds, "val/labels": labels}, 2)
    saved = np.load(trainer.log_dir / "confusion_matrix" / "val_epoch_0002.npy", allow_pickle=False)
    np.testing.assert_array_equal(saved, expected)
    normalized = ConfusionMatrixCallback(ConfusionMatrixConfig(normalize=True, figsize=(3, 3), dpi=40), trainer)
    normalized.on_test_epoch_end({"test/preds": preds, "test/labels": labels}, 2)
    trainer.logger.flush()
    images = _images(trainer.log_dir)
    assert set(images) == {"val/confusion_matrix", "test/confusion_matrix"}
    assert images["val/confusion_matrix"][0].step == 12
    assert images["val/confusion_matrix"][0].width == 120


def test_confusion_matrix_from_per_batch_count_matrices(trainer):
    batch_a = np.array([[2, 0], [1, 3]])
    batch_b = np.array([[0, 1], [0, 4]])
    gathered = np.concatenate([batch_a, batch_b])  # CONCAT joins per-batch (C, C) values along the first axis
    callback = ConfusionMatrixCallback(ConfusionMatrixConfig(figsize=(2, 2), dpi=30), trainer)
    callback.on_validation_epoch_end({"val/conf_matrix": gathered}, 1)
    saved = np.load(trainer.log_dir / "confusion_matrix" / "val_epoch_0001.npy")
    np.testing.assert_array_equal(saved, batch_a + batch_b)


def test_confusion_matrix_per_named_loader(trainer):
    """Named val loaders (``val/<name>/preds``): one matrix each, ``val_<name>_epoch_NNNN.npy``."""
    callback = ConfusionMatrixCallback(ConfusionMatrixConfig(figsize=(2, 2), dpi=30), trainer)
    callback.on_validation_epoch_end({"val/clean/preds": np.array([0, 1]), "val/clean/labels": np.array([0, 1]),
                                      "val/noisy/preds": np.array([0, 1]), "val/noisy/labels": np.array([1, 0])}, 1)
    folder = trainer.log_dir / "confusion_matrix"
    clean, noisy = np.load(folder / "val_clean_epoch_0001.npy"), np.load(folder / "val_noisy_epoch_0001.npy")
    assert clean.sum() == noisy.sum() == 2  # (num_classes, num_classes) counts
    np.testing.assert_array_equal(clean[:2, :2], [[1, 0], [0, 1]])
    np.testing.assert_array_equal(noisy[:2, :2], [[0, 1], [1, 0]])
    assert not (folder / "val_epoch_0001.npy").exists()


def test_confusion_matrix_without_predictions_warns(trainer, caplog):
    callback = ConfusionMatrixCallback(ConfusionMatrixConfig(), trainer)
    with caplog.at_level(logging.WARNING, logger="jax_trainer"):
        callback.on_validation_epoch_end({"val/acc": 1.0}, 1)
    assert "log_predictions" in caplog.text
    assert not (trainer.log_dir / "confusion_matrix").exists()


# ------------------------------------------------------------------------------------------------ GradientSpikeMonitor
def _run_norms(monitor, norms, start_step=0):
    """Fold one gradient norm per step through the monitor's on-device update (jitted scan, as in the loop)."""

    def step(state, xs):
        norm, index = xs
        info = StepInfo(step=index, loss=norm * 2, grads={"w": jnp.stack([norm, 0.0])}, values={})
        return monitor.update_step_state(state, info), None

    norms = jnp.asarray(norms, jnp.float32)
    steps = jnp.arange(start_step + 1, start_step + 1 + len(norms), dtype=jnp.int32)
    state, _ = jax.jit(lambda s, xs: jax.lax.scan(step, s, xs))(monitor.init_step_state(), (norms, steps))
    monitor.receive_step_state(jax.device_get(state))


def _smooth(n, seed=0):
    return 1.0 + 0.1 * np.random.default_rng(seed).standard_normal(n)


def test_grad_spike_monitor_fires_on_spike_only(trainer):
    trainer.current_epoch, trainer.global_step = 1, 0
    config = GradientSpikeMonitorConfig(threshold=3.0, ema_decay=0.9, log_to_disk=True)
    smooth = GradientSpikeMonitor(config, trainer)
    _run_norms(smooth, _smooth(60))
    assert smooth.spikes == [] and smooth.unreported == 0
    assert smooth.ema == pytest.approx(1.0, abs=0.1)

    norms = _smooth(60)
    norms[37] = 50.0
    spiky = GradientSpikeMonitor(config, trainer)
    _run_norms(spiky, norms, start_step=100)  # the epoch starts after global step 100: the spike is step 138
    assert len(spiky.spikes) == 1
    spike = spiky.spikes[0]
    assert (spike["step"], spike["epoch"], spike["batch_idx"]) == (138, 1, 37)
    assert spike["grad_norm"] == pytest.approx(50.0) and spike["loss"] == pytest.approx(100.0)
    assert spike["grad_norm_ema"] == pytest.approx(1.0, abs=0.2)
    trainer.global_step = 160
    spiky.on_training_epoch_end({}, 1)
    assert json.loads((trainer.log_dir / "gradient_spikes.json").read_text()) == spiky.spikes
    assert spiky.unreported == 0


def test_grad_spike_monitor_state_round_trip_and_nonfinite(trainer):
    trainer.current_epoch = 1
    config = GradientSpikeMonitorConfig(threshold=3.0, ema_decay=0.9)
    norms = _smooth(20)
    norms[10] = np.nan
    monitor = GradientSpikeMonitor(config, trainer)
    _run_norms(monitor, norms)
    assert [s["step"] for s in monitor.spikes] == [11] and monitor.spikes[0]["grad_norm"] is None
    assert np.isfinite(monitor.ema) and monitor.seen == 19
    state = json.loads(json.dumps(monitor.state_dict(), allow_nan=False))
    resumed = GradientSpikeMonitor(config, trainer)
    resumed.load_state_dict(state)
    assert resumed.state_dict() == monitor.state_dict()
    initial = resumed.init_step_state()
    assert float(initial["ema"]) == pytest.approx(monitor.ema) and int(initial["seen"]) == 19


def test_grad_spike_monitor_keeps_the_latest_when_the_record_overflows(trainer):
    trainer.current_epoch = 1
    monitor = GradientSpikeMonitor(GradientSpikeMonitorConfig(threshold=1.5, ema_decay=0.5), trainer)
    n = MAX_SPIKES_PER_EPOCH + 10
    norms = np.where(np.arange(2 * n) % 2 == 1, 100.0, 1.0)  # every other step spikes
    norms[0] = 1.0
    _run_norms(monitor, norms)
    assert monitor.unreported == n
    steps = [s["step"] for s in monitor.spikes]
    assert len(steps) == MAX_SPIKES_PER_EPOCH and steps == sorted(steps) and steps[-1] == 2 * n


# ----------------------------------------------------------------------------------------- JAXProfiler, DisableGC
def test_profiler_traces_the_configured_steps(trainer):
    profiler = JAXProfiler(JAXProfilerConfig(first_step=2, profile_n_steps=3, every_n_minutes=0), trainer)
    assert profiler.wants_step_end
    profiler.on_training_start()
    active = []
    for step in range(1, 9):
        trainer.state = trainer.state + 1
        profiler.on_train_step_end(step, 1)
        active.append(profiler.active)
    assert active == [False, True, True, True, False, False, False, False]
    profiler.finalize("success")
    traces = list((trainer.log_dir / "profile").glob("plugins/profile/*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 0


def test_profiler_stops_at_epoch_end_and_on_failure(trainer):
    profiler = JAXProfiler(JAXProfilerConfig(first_step=0, profile_n_steps=100, every_n_minutes=0), trainer)
    profiler.on_training_start()
    profiler.on_train_step_end(1, 1)
    assert profiler.active
    profiler.on_training_epoch_end({}, 1)
    assert not profiler.active
    profiler.on_train_step_end(2, 2)
    assert not profiler.active, "every_n_minutes=0 traces once"
    profiler.finalize("failed")


@pytest.mark.parametrize("enabled_before", [True, False])
def test_disable_gc_restores_the_previous_setting(trainer, enabled_before):
    was = gc.isenabled()
    try:
        (gc.enable if enabled_before else gc.disable)()
        callback = DisableGC(DisableGCConfig(), trainer)
        callback.on_training_start()
        assert not gc.isenabled()
        callback.finalize("failed")
        assert gc.isenabled() == enabled_before
    finally:
        (gc.enable if was else gc.disable)()
