"""The test after ``fit`` runs on the best checkpoint when a ``ModelCheckpoint`` monitors a metric (Lightning's
``ckpt_path="best"``); ``test_ckpt="last"`` (argument or ``trainer.test_ckpt``) tests the final weights, and the
trainer keeps its final weights either way; a wrong ``test_ckpt`` fails before training.

The monitor is chosen so that best and last differ for sure: ``val/loss`` with ``mode: max`` keeps the worst epoch.
"""

import pytest

from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.trainer.final_test import run_final_test
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

    assert run_final_test(trainer, splits.test, "last") == final  # what train_model(test_ckpt="last") runs


def test_test_ckpt_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"trainer\.test_ckpt must be one of \('best', 'last'\), got 'worst'"):
        ImgClassifierTrainerConfig(test_ckpt="worst")
    splits = digits_splits()
    trainer = classifier("nnx", tmp_path, splits=splits)
    with pytest.raises(ValueError, match=r"^test_ckpt must be one of"):  # before anything is trained
        trainer.train_model(splits.train, test_loader=splits.test, test_ckpt="final")
    assert trainer.global_step == 0
