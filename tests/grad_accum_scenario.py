"""Gradient accumulation, a test tests/linen and tests/nnx import (they provide the ``mode`` fixture).

``accumulate_grad_batches: 4`` over batches of 16 must follow the same trajectory as batches of 64:
the 64-batch is exactly the four 16-batches in order, the loss is a batch mean, and the trainer
averages the four gradients (optax.MultiSteps) before one optimizer step.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jax_trainer.datasets import SupervisedBatch
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.optimizer import AdamConfig, SGDConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import model_weights

OPTIMIZERS = {
    "sgd_momentum": SGDConfig(learning_rate=0.1, momentum=0.9),
    "adam": AdamConfig(learning_rate=1e-2),
}
N_EXAMPLES, N_FEATURES, N_CLASSES = 64 * 5, 8, 4


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_EXAMPLES, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, N_EXAMPLES).astype(np.int32)
    return x, y


def train_params(mode: str, optimizer, batch_size: int, accumulate: int, log_dir) -> list[np.ndarray]:
    """Parameters after two epochs over the same data in the same order."""
    x, y = _data()
    batches = [SupervisedBatch(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, N_EXAMPLES, batch_size)]
    config = ImgClassifierTrainerConfig(
        model_mode=mode,
        train_epochs=2,
        accumulate_grad_batches=accumulate,
        enable_progress_bar=False,
        num_classes=N_CLASSES,
        logger=LoggerConfig(log_dir=str(log_dir), tool_config=None),
    )
    model = MLPClassifierConfig(hidden_dims=[16], num_classes=N_CLASSES)
    exmp = SupervisedBatch(x[:16], y[:16])  # the same init for every run
    trainer = ImgClassifierTrainer(config, model, optimizer, exmp)
    initial = list(model_weights(trainer).values())
    trainer.train_model(batches)
    final = list(model_weights(trainer).values())
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(initial, final)), "training did not move the parameters"
    return final


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_grad_accumulation_matches_big_batch(mode, optimizer_name, tmp_path):
    optimizer = OPTIMIZERS[optimizer_name]
    big = train_params(mode, optimizer, 64, 1, tmp_path / "big")
    accumulated = train_params(mode, optimizer, 16, 4, tmp_path / "acc")
    small = train_params(mode, optimizer, 16, 1, tmp_path / "small")
    assert len(big) == len(accumulated)
    for a, b in zip(accumulated, big):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    # Without accumulation the 16-batch run takes 4x the steps: the comparison above can tell them apart.
    assert max(np.abs(a - b).max() for a, b in zip(small, big)) > 1e-3
