"""ImgClassifierTrainer refuses labels outside ``[0, num_classes)`` before training: such labels train to accuracy 0
while the run reports success. The check reads the in-memory loaders' label arrays once, never a step's batch."""

from __future__ import annotations

import numpy as np
import pytest

from jax_trainer.datasets import ArrayDatasetConfig, DatasetInterface
from jax_trainer.datasets.files import DataError
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.zoo.configs import MLPClassifierConfig


def loaders(train_labels, val_labels):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(len(train_labels), 4)).astype(np.float32), "y_train": np.array(train_labels),
        "x_val": rng.normal(size=(len(val_labels), 4)).astype(np.float32), "y_val": np.array(val_labels),
    }
    return ArrayDatasetConfig(global_batch_size=4).instantiate(DatasetInterface, arrays=arrays).build()


def trainer(mode, log_dir, data, trainer_classes=10, model_classes=10):
    config = ImgClassifierTrainerConfig(
        model_mode=mode, num_classes=trainer_classes, enable_progress_bar=False,
        logger=LoggerConfig(log_dir=str(log_dir), tool_config=None),
    )
    model = MLPClassifierConfig(hidden_dims=[8], num_classes=model_classes)
    return ImgClassifierTrainer(config, model, AdamWConfig(learning_rate=1e-3), next(iter(data.train)))


CASES = [
    ([0, 1, 2, 12, 3, 4, 5, 6], [0, 1], 10, 10, ["train labels", "12", "model.num_classes 10"]),
    ([0, 1, 2, 3, 4, 5, 6, 7], [0, 9], 10, 8, ["val labels", "9", "model.num_classes 8"]),
    ([0, 1, 2, -1, 4, 5, 6, 7], [0, 1], 10, 10, ["train labels", "-1"]),
]


@pytest.mark.parametrize("train_labels,val_labels,trainer_classes,model_classes,fragments", CASES)
def test_labels_outside_num_classes_are_refused_before_training(
    mode, tmp_path, train_labels, val_labels, trainer_classes, model_classes, fragments
):
    data = loaders(train_labels, val_labels)
    module = trainer(mode, tmp_path / "run", data, trainer_classes, model_classes)
    with pytest.raises(DataError) as info:
        module.train_model(data.train, data.val)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert module.global_step == 0 and not (tmp_path / "run" / "checkpoints").exists()


def test_labels_inside_num_classes_train(mode, tmp_path):
    data = loaders([0, 1, 2, 3, 4, 5, 6, 9], [0, 9])
    trainer(mode, tmp_path / "run", data).train_model(data.train, data.val)


def test_the_model_width_decides_not_the_confusion_matrix_size(mode, tmp_path):
    """A model of 12 classes with trainer.num_classes left at its default (10): labels up to 11 train."""
    data = loaders([0, 1, 2, 3, 4, 5, 6, 11], [0, 10])
    trainer(mode, tmp_path / "run", data, trainer_classes=10, model_classes=12).train_model(data.train, data.val)
