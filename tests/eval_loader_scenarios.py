"""Several named val/test loaders, run by tests/core/test_backends_eval_loaders.py for every backend (``mode``).

The named splits come from an ``ArrayDataset`` whose arrays hold ``x_val_clean``/``x_val_noisy`` (the same digits,
the noisy ones with every label shifted by one): as the model learns, the clean loss falls and the noisy loss rises,
so an ``EarlyStopping`` on ``val/noisy/loss`` stops early while one on the clean loss would not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from jax_trainer.bench import count_compilations
from jax_trainer.callbacks import EarlyStoppingConfig, ModelCheckpointConfig
from jax_trainer.datasets import ArrayDatasetConfig, DatasetInterface
from jax_trainer.errors import InputError
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.logger.tools.tensorboard_tool import TensorboardToolLoggerConfig
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits

PATIENCE = 2


def named_splits():
    """An ArrayDataset with named val and test splits (``clean``, ``noisy``), built as from a config."""
    digits = digits_splits(batch_size=64)
    train, held = digits.train.arrays, digits.val.arrays
    arrays = {
        "x_train": train.input, "y_train": train.target,
        "x_val_clean": held.input, "y_val_clean": held.target,
        "x_val_noisy": held.input, "y_val_noisy": (held.target + 1) % 10,
        "x_test_clean": held.input[:50], "y_test_clean": held.target[:50],
    }
    return ArrayDatasetConfig(global_batch_size=64).instantiate(DatasetInterface, arrays=arrays).build()


def _stop_epoch(series: list[float], patience: int) -> int | None:
    """The epoch (1-based) at which EarlyStopping(mode=min) on ``series`` stops, None if it never does."""
    best, wait = math.inf, 0
    for epoch, value in enumerate(series, 1):
        if value < best:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return None


def test_two_named_val_loaders_and_early_stopping_on_the_second(mode, tmp_path):
    splits = named_splits()
    assert set(splits.val) == {"clean", "noisy"} and set(splits.test) == {"clean"}
    callbacks = {
        "stop": EarlyStoppingConfig(monitor="val/noisy/loss", mode="min", patience=PATIENCE),
        "ckpt": ModelCheckpointConfig(monitor="val/clean/acc", mode="max", save_top_k=1),
    }
    logger = LoggerConfig(log_dir=str(tmp_path), log_steps_every=50, tool_config=TensorboardToolLoggerConfig())
    config = ImgClassifierTrainerConfig(
        model_mode=mode, train_epochs=12, enable_progress_bar=False, logger=logger, callbacks=callbacks
    )
    trainer = ImgClassifierTrainer(
        config, MLPClassifierConfig(hidden_dims=[32]), AdamWConfig(learning_rate=3e-3), next(iter(splits.train))
    )
    results = trainer.train_model(splits.train, splits.val, splits.test)

    epochs = sorted(k for k in results if k != "test")
    for epoch in epochs:
        assert set(results[epoch]) == {f"val/{n}/{m}" for n in ("clean", "noisy") for m in ("acc", "loss")}, results
        for name in ("clean", "noisy"):
            written = json.loads((tmp_path / "metrics" / f"val_{name}_epoch_{epoch:04d}.json").read_text())
            assert written == {**{k: v for k, v in results[epoch].items() if f"/{name}/" in k}, "epoch": epoch,
                               "step": written["step"]}
    assert not list((tmp_path / "metrics").glob("val_epoch_*.json"))
    assert set(results["test"]) == {"test/clean/acc", "test/clean/loss"}
    assert (tmp_path / "metrics" / f"test_clean_epoch_{epochs[-1]:04d}.json").is_file()

    noisy = [results[e]["val/noisy/loss"] for e in epochs]
    clean = [results[e]["val/clean/loss"] for e in epochs]
    expected = _stop_epoch(noisy, PATIENCE)
    assert expected is not None and expected == epochs[-1] < config.train_epochs, (noisy, epochs)
    assert _stop_epoch(clean[:expected], PATIENCE) is None, clean  # the clean loader alone would not have stopped
    assert trainer.callbacks[0].stopped_epoch == expected
    assert trainer.callbacks[1].best_model_score == max(results[e]["val/clean/acc"] for e in epochs)

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"val/clean/acc", "val/noisy/acc", "val/clean/loss", "val/noisy/loss", "test/clean/acc"} <= tags, tags
    assert [e.value for e in events.Scalars("val/noisy/loss")] == pytest.approx(noisy, rel=1e-6)


def test_a_single_loader_keeps_its_keys_and_eval_model_takes_names(mode, tmp_path):
    splits = named_splits()
    trainer = classifier(mode, tmp_path, train_epochs=1)
    results = trainer.train_model(splits.train, splits.val["clean"])
    assert set(results[1]) == {"val/acc", "val/loss"}
    assert (tmp_path / "metrics" / "val_epoch_0001.json").is_file()
    named = trainer.eval_model({"a": splits.val["clean"], "b": splits.val["noisy"]}, "test", 1)
    assert named["test/a/acc"] == trainer.test_model(splits.val["clean"], 1)["test/acc"]
    assert named["test/a/acc"] != named["test/b/acc"]


BAD = [
    ({"val_loader": 5}, "train_model(val_loader=...): expected a loader"),
    ({"test_loader": "data/val"}, "train_model(test_loader=...): expected a loader"),
    ({"val_loader": np.zeros((4, 8))}, "train_model(val_loader=...): expected a loader"),
    ({"val_loader": {}}, "train_model(val_loader=...): an empty dict names no loader; expected a loader"),
    ({"val_loader": {"clean": 3}}, "train_model(val_loader=...)['clean']: expected a loader"),
    ({"val_loader": {"no/slash": []}}, "train_model(val_loader=...): loader name 'no/slash' is not usable"),
    ({"val_loader": {1: []}}, "train_model(val_loader=...): loader name 1 is not usable"),
]


def test_anything_else_fails_naming_the_argument_before_compiling(mode, tmp_path):
    splits = digits_splits()
    trainer = classifier(mode, tmp_path)
    for kwargs, named in BAD:
        with count_compilations() as counts, pytest.raises(InputError) as err:
            trainer.train_model(splits.train, **kwargs)
        message = str(err.value)
        assert message.startswith(named), message
        assert "expected a loader" not in named or "or a dict name -> loader" in message, message
        assert not counts and not (tmp_path / "metrics").exists(), kwargs
