"""Regression metrics in the target's own units, checked against numpy on the model's own predictions: a config
run takes the dataset's target scale (the diabetes targets are standardised for training), and MAPE leaves out
zero targets instead of dividing by an epsilon."""

import numpy as np
import pytest

from jax_trainer.config import parse
from jax_trainer.datasets import DiabetesConfig, DiabetesDataset, NumpyLoader, SupervisedBatch
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.run import build_data, build_trainer
from jax_trainer.trainer import RegressionTrainer, RegressionTrainerConfig
from jax_trainer.zoo.configs import MLPRegressorConfig
from trainer_helpers import trainer_config


def _expected(preds: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    err = preds - targets
    nonzero = targets != 0
    return {
        "mse": np.mean(err**2),
        "mae": np.mean(np.abs(err)),
        "mape": 100 * np.mean(np.abs(err[nonzero]) / np.abs(targets[nonzero])),
        "r2": 1 - np.sum(err**2) / np.sum((targets - targets.mean()) ** 2),
    }


def test_a_config_run_reports_diabetes_metrics_in_its_units(tmp_path):
    config = parse(
        {
            "trainer": {"class_name": "RegressionTrainer", "logger": {"log_dir": str(tmp_path), "tool_config": None}},
            "model": {"class_name": "MLPRegressor", "hidden_dims": [16]},
            "optimizer": {"class_name": "AdamW", "learning_rate": 1e-3},
            "dataset": {"class_name": "DiabetesDataset", "global_batch_size": 32},
        }
    )
    dataset, splits = build_data(config)
    trainer = build_trainer(config, dataset.example_batch(), write_run_dir=False, dataset=dataset)
    raw_train, raw_val, _ = DiabetesDataset(DiabetesConfig(normalize=False)).splits()
    assert trainer.config.target_mean == pytest.approx(raw_train.target.mean())
    assert trainer.config.target_std == pytest.approx(raw_train.target.std())

    metrics = trainer.eval_model(splits.val, "val", 1)
    trainer.logger.finalize("success")
    preds = trainer.predict(splits.val) * trainer.config.target_std + trainer.config.target_mean
    for name, value in _expected(preds, raw_val.target).items():
        assert metrics[f"val/{name}"] == pytest.approx(value, rel=1e-4), name


def test_mape_leaves_out_zero_targets(tmp_path):
    rng = np.random.default_rng(0)
    targets = rng.uniform(1.0, 5.0, 40).astype(np.float32)
    targets[::5] = 0.0  # in the target's units
    mean, std = 2.0, 4.0  # exact in binary: a zero target comes back exactly
    data = SupervisedBatch(rng.normal(size=(40, 3)).astype(np.float32), (targets - mean) / std)
    loader = NumpyLoader(data, 16, shuffle=False, drop_last=False)
    config = trainer_config("nnx", tmp_path, cls=RegressionTrainerConfig, target_mean=mean, target_std=std)
    trainer = RegressionTrainer(config, MLPRegressorConfig(hidden_dims=[8]), AdamWConfig(learning_rate=1e-3), data)
    metrics = trainer.eval_model(loader, "test", 1)
    trainer.logger.finalize("success")
    preds = trainer.predict(loader) * std + mean
    expected = _expected(preds, targets)
    assert np.isfinite(metrics["test/mape"]) and metrics["test/mape"] < 1e4
    for name, value in expected.items():
        assert metrics[f"test/{name}"] == pytest.approx(value, rel=1e-4), name
