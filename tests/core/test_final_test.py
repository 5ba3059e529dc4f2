"""The test after ``fit`` runs on the best checkpoint when a ``ModelCheckpoint`` monitors a metric (Lightning's
``ckpt_path="best"``); ``test_ckpt="last"`` (argument or ``trainer.test_ckpt``) tests the final weights, and the
trainer keeps its final weights either way.

The monitor is chosen so that best and last differ for sure: ``val/loss`` with ``mode: max`` keeps the worst epoch.
"""

import pytest

from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from trainer_helpers import classifier, digits_splits

WORST = {"ckpt": ModelCheckpointConfig(monitor="val/loss", mode="max", save_top_k=1, save_last=True)}


def test_the_test_after_fit_runs_on_the_best_checkpoint(tmp_path):
    splits = digits_splits()
    trainer = classifier("nnx", tmp_path / "run", splits=splits, train_epochs=3, callbacks=WORST)
    results = trainer.train_model(splits.train, splits.val, splits.test)
    worst_epoch = max((epoch for epoch in results if epoch != "test"), key=lambda e: results[e]["val/loss"])
    assert worst_epoch != 3  # the best checkpoint is not the final weights

    best = ImgClassifierTrainer.load_from_checkpoint(tmp_path / "run", which="best", log_dir=tmp_path / "eval")
    assert best.current_epoch == worst_epoch
    assert results["test"] == best.test_model(splits.test)

    final = trainer.test_model(splits.test, 3)  # the trainer kept the weights training ended with
    assert final != results["test"]

    again = classifier("nnx", tmp_path / "again", splits=splits, train_epochs=3, callbacks=WORST)
    assert again.train_model(splits.train, splits.val, splits.test, test_ckpt="last")["test"] == final


def test_test_ckpt_is_checked():
    with pytest.raises(ValueError, match=r"trainer\.test_ckpt must be one of \('best', 'last'\), got 'worst'"):
        ImgClassifierTrainerConfig(test_ckpt="worst")
