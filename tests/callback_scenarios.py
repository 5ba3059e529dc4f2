"""Callbacks and value policies in real (tiny) training runs whose code paths differ per backend; tests/linen and
tests/nnx import these tests and provide the ``mode`` fixture. Backend-independent callback tests live in
tests/nnx/test_callbacks_nnx.py and use the helpers here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import compoconf
import pytest
from compoconf import ConfigInterface
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jax_trainer.bench import count_compilations
from jax_trainer.datasets import SupervisedBatch
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig, TrainerInterface
from trainer_helpers import classifier, digits_splits

SPIKE_MONITOR = {"class_name": "GradientSpikeMonitor", "log_to_disk": True, "ema_decay": 0.99, "threshold": 3.0}


@dataclass
class _Top(ConfigInterface):
    trainer: TrainerInterface.cfgtype = None


def parse_trainer(**fields) -> ImgClassifierTrainerConfig:
    """An ImgClassifierTrainer config parsed from YAML fields, as a run config's ``trainer:`` block is."""
    return compoconf.parse_config(_Top, {"trainer": {"class_name": "ImgClassifierTrainer", **fields}}).trainer


def read_events(log_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


class SpikeLoader:
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


# linen runs one step per dispatch, nnx scans two: each backend covers one of the two step paths.
STEPS_PER_DISPATCH = {"linen": 1, "nnx": 2}


def test_gradient_spike(mode, tmp_path):
    batches = list(digits_splits(64).train)
    callbacks = parse_trainer(callbacks={"GradientSpikeMonitor": SPIKE_MONITOR}).callbacks
    trainer = classifier(
        mode, tmp_path, train_epochs=2, callbacks=callbacks, steps_per_dispatch=STEPS_PER_DISPATCH[mode]
    )
    with count_compilations() as counts:  # the extras' host state re-enters the carry each epoch: no recompile
        trainer.train_model(SpikeLoader(batches, spike_epoch=2, spike_batch=5))
    assert counts["jit(train_step)"] + counts["jit(train_steps_scanned)"] == 1, counts
    spikes = json.loads((tmp_path / "gradient_spikes.json").read_text())
    assert [(s["epoch"], s["batch_idx"], s["step"]) for s in spikes] == [(2, 5, len(batches) + 6)]
    assert spikes[0]["grad_norm"] > 3.0 * spikes[0]["grad_norm_ema"]
    assert [e.value for e in read_events(tmp_path).Scalars("optimizer/grad_spikes")] == [0.0, 1.0]


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


def test_value_policy(mode, tmp_path):
    policies = {"aux_weight": {"class_name": "ExponentialValuePolicy", "init_value": 1.0, "decay_rate": 0.5}}
    config = parse_trainer(value_policies=policies)
    splits = digits_splits(54)  # 270 validation examples: five equal batches, so eval compiles once too
    trainer = classifier(
        mode, tmp_path, splits=splits, trainer_cls=_WeightedTrainer, train_epochs=3,
        value_policies=config.value_policies,
    )
    with count_compilations() as counts:
        results = trainer.train_model(splits.train, splits.val)
    weights = [1.0, 0.5, 0.25]
    for epoch, weight in enumerate(weights, start=1):
        train = json.loads((tmp_path / "metrics" / f"train_epoch_{epoch:04d}.json").read_text())
        assert train["train/aux_weight_epoch"] == weight
        assert train["train/loss_epoch"] == pytest.approx(weight * train["train/ce_epoch"], rel=1e-5)
        assert results[epoch]["val/aux_weight"] == weight
        assert results[epoch]["val/loss"] == pytest.approx(weight * results[epoch]["val/ce"], rel=1e-5)
    assert counts["jit(train_step)"] == 1 and counts["jit(eval_step)"] == 1, counts  # a new value: no recompile
