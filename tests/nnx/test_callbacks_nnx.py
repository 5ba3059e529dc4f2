"""Callbacks in real runs under the nnx backend (scenarios in tests/callback_scenarios.py).

The built-in callbacks, early stopping, finalization and callback state on resume do not depend on the backend;
they run here only.
"""

import gc
import json

import numpy as np
import pytest

from callback_scenarios import SPIKE_MONITOR, SpikeLoader, parse_trainer, read_events
from jax_trainer.callbacks import Callback, CallbackConfig
from jax_trainer.callbacks.checkpoint import ModelCheckpointConfig
from jax_trainer.optimizer import AdamWConfig, LinearScheduleConfig
from jax_trainer.trainer import ImgClassifierTrainer
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits


def test_builtin_callbacks(mode, tmp_path):
    """Callbacks configured with the original jax_trainer's YAML fields, in one two-epoch run."""
    trainer_yaml = {
        "model_mode": mode, "train_epochs": 2, "enable_progress_bar": False,
        "log_predictions": True, "num_classes": 10,
        "logger": {"class_name": "Logger", "log_dir": str(tmp_path), "log_steps_every": 50},
        "callbacks": {
            "LearningRateMonitor": {"class_name": "LearningRateMonitor", "every_n_epochs": 1},
            "JAXProfiler": {"class_name": "JAXProfiler", "every_n_minutes": 60, "first_step": 3, "profile_n_steps": 2},
            "ConfusionMatrixCallback": {
                "class_name": "ConfusionMatrixCallback", "normalize": False, "cmap": "Blues", "figsize": [4, 4],
                "dpi": 40, "every_n_epochs": 1,
            },
            "GradientSpikeMonitor": {
                "class_name": "GradientSpikeMonitor", "every_n_epochs": 1, "log_to_disk": True, "ema_decay": 0.99,
                "threshold": 3.0,
            },
            "DisableGC": {"class_name": "DisableGC"},
        },
    }
    config = parse_trainer(**trainer_yaml)
    splits = digits_splits(64)
    optimizer = AdamWConfig(learning_rate=LinearScheduleConfig(init_value=1e-3, end_value=1e-4))
    trainer = ImgClassifierTrainer(config, MLPClassifierConfig(hidden_dims=[32]), optimizer, next(iter(splits.train)))
    gc_was_enabled = gc.isenabled()
    trainer.train_model(splits.train, splits.val)
    steps_per_epoch = len(splits.train)
    assert gc.isenabled() == gc_was_enabled
    events = read_events(tmp_path)

    # LearningRateMonitor: the rate of the first step, then the rate the last update of each epoch used.
    lr_series = [(e.step, e.value) for e in events.Scalars("optimizer/lr-AdamW")]
    assert [step for step, _ in lr_series] == [0, steps_per_epoch, 2 * steps_per_epoch]
    expected = [float(trainer.lr_schedule(s)) for s in (0, steps_per_epoch - 1, 2 * steps_per_epoch - 1)]
    assert [value for _, value in lr_series] == pytest.approx(expected, rel=1e-6)
    assert expected[0] > expected[1] > expected[2]

    # ConfusionMatrixCallback: an image per validation, counts equal to the final model's predictions.
    assert "val/confusion_matrix" in events.Tags()["images"]
    assert len(events.Images("val/confusion_matrix")) == 2
    model = trainer.bind_model()
    preds = np.concatenate([np.asarray(model(b.input)).argmax(-1) for b in splits.val])
    labels = np.concatenate([b.target for b in splits.val])
    by_hand = np.zeros((10, 10), np.int64)
    np.add.at(by_hand, (labels, preds), 1)
    saved = np.load(tmp_path / "confusion_matrix" / "val_epoch_0002.npy", allow_pickle=False)
    np.testing.assert_array_equal(saved, by_hand)

    # JAXProfiler: a trace TensorBoard's profile plugin reads.
    assert list((tmp_path / "profile").glob("plugins/profile/*/*.xplane.pb"))

    # GradientSpikeMonitor: a smooth run has no spikes.
    assert [e.value for e in events.Scalars("optimizer/grad_spikes")] == [0.0, 0.0]
    assert json.loads((tmp_path / "gradient_spikes.json").read_text()) == []


def test_early_stopping(mode, tmp_path):
    """min_delta 1.0 on accuracy can never be met: the run stops after 1 + patience validations, cleanly."""
    splits = digits_splits(64)
    stopper = {"class_name": "EarlyStopping", "monitor": "val/acc", "mode": "max", "patience": 2, "min_delta": 1.0}
    callbacks = parse_trainer(callbacks={"EarlyStopping": stopper}).callbacks
    trainer = classifier(mode, tmp_path, splits=splits, train_epochs=10, callbacks=callbacks)
    finalized = _Recorder(CallbackConfig(), trainer)
    trainer.callbacks.append(finalized)
    results = trainer.train_model(splits.train, splits.val, splits.test)
    assert sorted(k for k in results if k != "test") == [1, 2, 3]
    assert "test/acc" in results["test"]
    assert trainer.should_stop and trainer.current_epoch == 3
    assert trainer.callbacks[0].state_dict() == {"best": results[1]["val/acc"], "wait": 2, "stopped_epoch": 3}
    assert finalized.statuses == ["success"]
    assert not (tmp_path / "metrics" / "train_epoch_0004.json").exists()


class _Recorder(Callback):
    def __init__(self, config, trainer=None, data_module=None):
        super().__init__(config, trainer, data_module)
        self.statuses = []

    def finalize(self, status):
        self.statuses.append(status)


class _Boom(_Recorder):
    def on_training_epoch_end(self, train_metrics, epoch_idx):
        raise RuntimeError("boom")


class _FailingFinalize(_Recorder):
    def finalize(self, status):
        super().finalize(status)
        raise ValueError("finalize failed too")


def test_raising_callback_finalizes_all(mode, tmp_path):
    splits = digits_splits(64)
    trainer = classifier(mode, tmp_path, splits=splits, train_epochs=2)
    callbacks = [_Recorder(CallbackConfig(), trainer), _Boom(CallbackConfig(), trainer)]
    callbacks += [_FailingFinalize(CallbackConfig(), trainer), _Recorder(CallbackConfig(), trainer)]
    trainer.callbacks.extend(callbacks)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train_model(splits.train, splits.val)
    assert [cb.statuses for cb in callbacks] == [["failed"]] * 4
    assert trainer.current_epoch == 1


class _StopAt(Callback):
    """Simulates a crash: raises after train step ``step``."""

    def __init__(self, config, trainer=None, data_module=None, step=0):
        super().__init__(config, trainer, data_module)
        self.step = step

    def on_train_step_end(self, step, epoch_idx):
        if step == self.step:
            raise KeyboardInterrupt


def test_callback_state_survives_resume(mode, tmp_path):
    """A run killed mid-epoch and resumed from a mid-epoch checkpoint ends with the callbacks' state of an
    uninterrupted run: the spike monitor's on-device EMA and record (restored with the step carry) and
    host records, and EarlyStopping's counters."""
    splits = digits_splits(64)
    batches = list(splits.train)
    spe = len(batches)

    def run(log_dir, stop_at=None, ckpt_path=None):
        callbacks = {
            "ckpt": ModelCheckpointConfig(every_n_train_steps=spe + 2, save_last=True),
            "spike": SPIKE_MONITOR,
            "stop": {"class_name": "EarlyStopping", "monitor": "val/loss", "patience": 5},
        }
        callbacks = parse_trainer(callbacks=callbacks).callbacks
        trainer = classifier(mode, log_dir, splits=splits, train_epochs=2, callbacks=callbacks)
        if stop_at is not None:
            trainer.callbacks.append(_StopAt(CallbackConfig(), trainer, step=stop_at))
        trainer.train_model(SpikeLoader(batches, spike_epoch=2, spike_batch=5), splits.val, ckpt_path=ckpt_path)
        return trainer

    full = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", stop_at=spe + 4)
    resumed = run(tmp_path / "resumed", ckpt_path="last")
    assert [s["step"] for s in full.callbacks[1].spikes] == [spe + 6]
    assert resumed.callbacks[1].state_dict() == full.callbacks[1].state_dict()
    assert resumed.callbacks[2].state_dict() == full.callbacks[2].state_dict()
    assert json.loads((tmp_path / "resumed" / "gradient_spikes.json").read_text()) == full.callbacks[1].spikes
