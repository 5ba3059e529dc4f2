"""Built-in callbacks and value policies in real (tiny) training runs; tests/linen and tests/nnx run them."""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass

import compoconf
import numpy as np
import pytest
from compoconf import ConfigInterface
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jax_trainer.callbacks import Callback, CallbackConfig
from jax_trainer.callbacks.checkpoint import ModelCheckpointConfig
from jax_trainer.datasets import SupervisedBatch
from jax_trainer.optimizer import AdamWConfig, LinearScheduleConfig
from jax_trainer.trainer import ImgClassifierTrainer, TrainerInterface
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits


SPIKE_MONITOR = {"class_name": "GradientSpikeMonitor", "log_to_disk": True, "ema_decay": 0.99, "threshold": 3.0}


@dataclass
class _Top(ConfigInterface):
    trainer: TrainerInterface.cfgtype = None


def _events(log_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def builtin_callbacks(mode, tmp_path):
    """Callbacks configured with the original jax_trainer's YAML fields, in one two-epoch run."""
    trainer_yaml = {
        "class_name": "ImgClassifierTrainer", "model_mode": mode, "train_epochs": 2, "enable_progress_bar": False,
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
    config = compoconf.parse_config(_Top, {"trainer": trainer_yaml}).trainer
    splits = digits_splits(64)
    optimizer = AdamWConfig(learning_rate=LinearScheduleConfig(init_value=1e-3, end_value=1e-4))
    trainer = ImgClassifierTrainer(config, MLPClassifierConfig(hidden_dims=[32]), optimizer, next(iter(splits.train)))
    gc_was_enabled = gc.isenabled()
    trainer.train_model(splits.train, splits.val)
    steps_per_epoch = len(splits.train)
    assert gc.isenabled() == gc_was_enabled
    events = _events(tmp_path)

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


def early_stopping(mode, tmp_path):
    """min_delta 1.0 on accuracy can never be met: the run stops after 1 + patience validations, cleanly."""
    splits = digits_splits(64)
    stopper = {"class_name": "EarlyStopping", "monitor": "val/acc", "mode": "max", "patience": 2, "min_delta": 1.0}
    config = compoconf.parse_config(
        _Top, {"trainer": {"class_name": "ImgClassifierTrainer", "callbacks": {"EarlyStopping": stopper}}}
    ).trainer
    trainer = classifier(mode, tmp_path, splits=splits, train_epochs=10, callbacks=config.callbacks)
    finalized = _Recorder(CallbackConfig(), trainer)
    trainer.callbacks.append(finalized)
    results = trainer.train_model(splits.train, splits.val, splits.test)
    assert sorted(k for k in results if k != "test") == [1, 2, 3]
    assert "test/acc" in results["test"]
    assert trainer.should_stop and trainer.current_epoch == 3
    assert trainer.callbacks[0].state_dict() == {"best": results[1]["val/acc"], "wait": 2, "stopped_epoch": 3}
    assert finalized.statuses == ["success"]
    assert not (tmp_path / "metrics" / "train_epoch_0004.json").exists()


class _SpikeLoader:
    """Fixed batches; in ``spike_epoch`` the inputs of batch ``spike_batch`` are scaled by 1000."""

    def __init__(self, batches, spike_epoch, spike_batch):
        self.batches, self.spike_epoch, self.spike_batch, self.epoch = batches, spike_epoch, spike_batch, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for i, batch in enumerate(self.batches):
            if self.epoch == self.spike_epoch and i == self.spike_batch:
                batch = SupervisedBatch(batch.input * 1000.0, batch.target)
            yield batch


def gradient_spike(mode, tmp_path, steps_per_dispatch=1):
    batches = list(digits_splits(64).train)
    config = compoconf.parse_config(
        _Top, {"trainer": {"class_name": "ImgClassifierTrainer", "callbacks": {"GradientSpikeMonitor": SPIKE_MONITOR}}}
    ).trainer
    trainer = classifier(
        mode, tmp_path, train_epochs=2, callbacks=config.callbacks, steps_per_dispatch=steps_per_dispatch
    )
    trainer.train_model(_SpikeLoader(batches, spike_epoch=2, spike_batch=5))
    spikes = json.loads((tmp_path / "gradient_spikes.json").read_text())
    assert [(s["epoch"], s["batch_idx"], s["step"]) for s in spikes] == [(2, 5, len(batches) + 6)]
    assert spikes[0]["grad_norm"] > 3.0 * spikes[0]["grad_norm_ema"]
    assert [e.value for e in _events(tmp_path).Scalars("optimizer/grad_spikes")] == [0.0, 1.0]


class _WeightedTrainer(ImgClassifierTrainer):
    """Cross-entropy times ``aux_weight``, a value policy; logs the weight and the unweighted loss."""

    @staticmethod
    def _weighted(loss, metrics, aux_weight):
        metrics = {**metrics, "ce": loss, "aux_weight": {"value": aux_weight, "mode": "single"}}
        return loss * aux_weight, metrics

    def loss_function(self, model, batch, train=True, aux_weight=None):
        return self._weighted(*super().loss_function(model, batch, train), aux_weight)

    def loss_function_linen(self, params, state, batch, rng, train=True, aux_weight=None):
        loss, (mutables, metrics) = super().loss_function_linen(params, state, batch, rng, train)
        loss, metrics = self._weighted(loss, metrics, aux_weight)
        return loss, (mutables, metrics)


def value_policy(mode, tmp_path):
    policies = {"aux_weight": {"class_name": "ExponentialValuePolicy", "init_value": 1.0, "decay_rate": 0.5}}
    config = compoconf.parse_config(
        _Top, {"trainer": {"class_name": "ImgClassifierTrainer", "value_policies": policies}}
    ).trainer
    splits = digits_splits(54)  # 270 validation examples: five equal batches, so eval compiles once too
    trainer = classifier(
        mode, tmp_path, splits=splits, trainer_cls=_WeightedTrainer, train_epochs=3,
        value_policies=config.value_policies,
    )
    results = trainer.train_model(splits.train, splits.val)
    weights = [1.0, 0.5, 0.25]
    for epoch, weight in enumerate(weights, start=1):
        train = json.loads((tmp_path / "metrics" / f"train_epoch_{epoch:04d}.json").read_text())
        assert train["train/aux_weight_epoch"] == weight
        assert train["train/loss_epoch"] == pytest.approx(weight * train["train/ce_epoch"], rel=1e-5)
        assert results[epoch]["val/aux_weight"] == weight
        assert results[epoch]["val/loss"] == pytest.approx(weight * results[epoch]["val/ce"], rel=1e-5)
    assert trainer._compiled["train"]._cache_size() == 1
    assert trainer._compiled["eval"]._cache_size() == 1


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


def raising_callback_finalizes_all(mode, tmp_path):
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


def callback_state_survives_resume(mode, tmp_path):
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
        callbacks = compoconf.parse_config(
            _Top, {"trainer": {"class_name": "ImgClassifierTrainer", "callbacks": callbacks}}
        ).trainer.callbacks
        trainer = classifier(mode, log_dir, splits=splits, train_epochs=2, callbacks=callbacks)
        if stop_at is not None:
            trainer.callbacks.append(_StopAt(CallbackConfig(), trainer, step=stop_at))
        trainer.train_model(_SpikeLoader(batches, spike_epoch=2, spike_batch=5), splits.val, ckpt_path=ckpt_path)
        return trainer

    full = run(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", stop_at=spe + 4)
    resumed = run(tmp_path / "resumed", ckpt_path="last")
    assert [s["step"] for s in full.callbacks[1].spikes] == [spe + 6]
    assert resumed.callbacks[1].state_dict() == full.callbacks[1].state_dict()
    assert resumed.callbacks[2].state_dict() == full.callbacks[2].state_dict()
    assert json.loads((tmp_path / "resumed" / "gradient_spikes.json").read_text()) == full.callbacks[1].spikes
