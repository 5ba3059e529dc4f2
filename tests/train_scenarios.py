"""Training behaviours every backend must show; tests/linen and tests/nnx import these tests and
provide the ``mode`` fixture."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jax_trainer.optimizer import AdamWConfig, SGDConfig
from jax_trainer.trainer import ImgClassifierTrainer, RegressionTrainer, RegressionTrainerConfig
from jax_trainer.zoo.configs import CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig
from trainer_helpers import classifier, diabetes_splits, digits_splits, fixed_batches, model_weights, trainer_config


def test_digits_mlp_reaches_95(mode, tmp_path):
    splits = digits_splits(batch_size=32)
    trainer = classifier(
        mode, tmp_path, model=MLPClassifierConfig(hidden_dims=[128]), optimizer=AdamWConfig(learning_rate=3e-3),
        splits=splits, train_epochs=10,
    )
    results = trainer.train_model(splits.train, splits.val)
    assert results[10]["val/acc"] >= 0.95, results[10]
    saved = json.loads((tmp_path / "metrics" / "val_epoch_0010.json").read_text())
    assert saved["val/acc"] == pytest.approx(results[10]["val/acc"])


def test_cnn_batchnorm_dropout(mode, tmp_path):
    splits = digits_splits(batch_size=32)
    model = CNNClassifierConfig(channels=[16, 32], dropout=0.1, batch_norm=True)
    optimizer = AdamWConfig(learning_rate=3e-3)
    trainer = classifier(mode, tmp_path, model=model, optimizer=optimizer, splits=splits, train_epochs=8)
    stats_before = _batch_stats(trainer)
    results = trainer.train_model(splits.train, splits.val)
    assert results[8]["val/acc"] >= 0.90, results[8]
    stats_after = _batch_stats(trainer)
    assert any(not np.allclose(a, b) for a, b in zip(stats_before, stats_after)), "batch statistics did not change"
    # Eval uses running averages: deterministic, and independent of the other examples in the batch.
    model_fn = trainer.bind_model()
    x = next(iter(splits.val)).input
    first, again = np.asarray(model_fn(x)), np.asarray(model_fn(x))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.asarray(model_fn(x[:5])), first[:5], atol=1e-5)
    # Two train steps draw different dropout masks: the same batch gives different losses.
    batch = jax.device_put(next(iter(splits.val)))
    step = jax.jit(trainer.backend.train_step)
    _, loss_a, _, _ = step(trainer.state, batch)
    state_b, _, _, _ = step(trainer.state, batch)
    _, loss_b, _, _ = step(state_b, batch)
    assert float(loss_a) != float(loss_b)


def _batch_stats(trainer):
    leaves = jax.tree_util.tree_flatten_with_path(trainer.backend.model_state_dict(trainer.model_state))[0]
    return [np.asarray(v) for p, v in leaves if any(getattr(k, "key", None) in ("mean", "var") for k in p)]


def test_diabetes_regression(mode, tmp_path):
    splits = diabetes_splits()
    config = trainer_config(mode, tmp_path, cls=RegressionTrainerConfig, train_epochs=30)
    trainer = RegressionTrainer(
        config, MLPRegressorConfig(hidden_dims=[32]), SGDConfig(learning_rate=0.01, momentum=0.9), next(iter(splits.train))
    )
    results = trainer.train_model(splits.train, splits.val)
    val = results[30]
    assert {"val/mse", "val/mae", "val/mape", "val/r2", "val/loss"} <= set(val)
    assert val["val/r2"] >= 0.35
    # R2 is exact over the whole split, not an average of per-batch values.
    preds = np.concatenate([np.asarray(trainer.bind_model()(b.input)).reshape(-1) for b in splits.val])
    target = np.concatenate([b.target for b in splits.val])
    expected_r2 = 1 - np.mean((preds - target) ** 2) / np.var(target)
    assert val["val/r2"] == pytest.approx(expected_r2, abs=1e-4)


def test_debug_equals_jit(mode, tmp_path):
    batches = fixed_batches(5)
    params = []
    for debug in (False, True):
        trainer = classifier(mode, tmp_path / str(debug), debug=debug, train_epochs=1)
        trainer.train_model(batches)
        params.append(list(model_weights(trainer).values()))
    for a, b in zip(*params):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)


class NaNAtStep3:
    """Mixin: the loss becomes NaN at the third train step (the batch's first target is a marker)."""

    def output_loss(self, logits, batch):
        loss, metrics = super().output_loss(logits, batch)
        return loss * jax.numpy.where(batch.target[0] == -1, jax.numpy.nan, 1.0), metrics


def test_nan_loss_raises(mode, tmp_path):
    class NaNTrainer(NaNAtStep3, ImgClassifierTrainer):
        pass

    batches = fixed_batches(6)
    marked = batches[2].target.copy()
    marked[0] = -1
    batches[2] = type(batches[2])(batches[2].input, marked)
    trainer = classifier(mode, tmp_path, trainer_cls=NaNTrainer, detect_nans=True, log_steps_every=2)
    with pytest.raises(FloatingPointError, match=r"train/loss.*step 3 \(epoch 1\)"):
        trainer.train_model(batches)
    assert (tmp_path / "train.log").exists()


def test_wrong_loss_shape_raises(mode, tmp_path):
    class BareScalar(ImgClassifierTrainer):
        def loss_function(self, model, batch, train=True):
            return super().loss_function(model, batch, train)[0]

        def loss_function_linen(self, params, state, batch, rng, train=True):
            return super().loss_function_linen(params, state, batch, rng, train)[0]

    trainer = classifier(mode, tmp_path, trainer_cls=BareScalar)
    hook = "loss_function_linen" if mode == "linen" else "loss_function"
    with pytest.raises(TypeError, match=rf"{hook} must return \(loss, .*got an array of shape \(\)"):
        trainer.train_model(fixed_batches(2))
