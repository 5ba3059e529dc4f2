"""Predict and the model summary under every backend (run from tests/core/test_backends_predict.py)."""

from __future__ import annotations

import jax
import numpy as np

from jax_trainer.bench import count_compilations
from jax_trainer.datasets import NumpyLoader, SupervisedBatch
from jax_trainer.trainer.summary import parameter_count
from trainer_helpers import classifier, digits_splits


def test_predict_returns_every_example_in_order_and_compiles_once(mode, tmp_path):
    data = digits_splits(batch_size=32)
    trainer = classifier(mode, tmp_path, splits=data, train_epochs=1)
    trainer.train_model(data.train)
    x = np.concatenate([b.input for b in data.test])[:100]  # 3 batches of 32 and one of 4
    loader = NumpyLoader(SupervisedBatch(x, np.zeros(len(x), np.int32)), batch_size=32, shuffle=False, drop_last=False)
    with count_compilations() as counts:
        outputs = trainer.predict(loader)
    assert outputs.shape == (100, 10)
    assert sum(counts.values()) == 1, counts  # the short last batch is padded, not compiled again
    expected = np.asarray(trainer.bind_model()(x))
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)


def test_the_summary_counts_every_parameter_and_goes_to_train_log(mode, tmp_path):
    data = digits_splits()
    trainer = classifier(mode, tmp_path, splits=data, train_epochs=1)
    trainer.train_model(data.train)
    leaves = jax.tree.leaves(trainer.backend.params(trainer.model_state))
    total = sum(leaf.size for leaf in leaves)
    assert parameter_count(trainer) == total == 64 * 64 + 64 + 64 * 10 + 10  # zoo MLP hidden [64] on 8x8 digits
    log = (tmp_path / "train.log").read_text()
    assert f"Total: {total:,} parameters in {len(leaves)} arrays" in log
    assert "l1/kernel" in log and "head/bias" in log and "optimizer state" in log
