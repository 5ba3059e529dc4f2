"""Small datasets bundled with scikit-learn: usable offline, fast enough for tests and demos."""

from dataclasses import dataclass

import numpy as np
from compoconf import register
from sklearn.datasets import load_diabetes, load_digits

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.in_memory import InMemoryDataset, random_split
from jax_trainer.datasets.interfaces import DatasetConfig


def _check_test_size(test_size: int | float) -> None:
    if isinstance(test_size, bool) or test_size < 0 or (isinstance(test_size, float) and test_size >= 1):
        raise ValueError(f"test_size: must be a fraction in [0, 1) or a count >= 0, got {test_size}")


@dataclass
class DigitsConfig(DatasetConfig):
    """``test_size`` and ``val_size`` are both taken from the 1797 examples (fractions of all)."""

    test_size: int | float = 0.2

    def __post_init__(self):
        super().__post_init__()
        _check_test_size(self.test_size)


@register
class DigitsDataset(InMemoryDataset):
    """8x8 handwritten digits: inputs (N, 8, 8) float32, in [0, 1] when ``normalize`` (else the raw
    0..16 intensities); targets int32 in 0..9."""

    config: DigitsConfig
    ignored_fields = ("data_dir",)

    def load_splits(self):
        digits = load_digits()
        images = digits.images.astype(np.float32)
        if self.config.normalize:
            images = images / 16.0
        data = SupervisedBatch(images, digits.target.astype(np.int32))
        train, (test, val) = random_split(
            data, {"test_size": self.config.test_size, "val_size": self.config.val_size}, self.config.split_seed
        )
        return train, val, test


@dataclass
class DiabetesConfig(DatasetConfig):
    """``test_size`` and ``val_size`` are both taken from the 442 examples (fractions of all)."""

    test_size: int | float = 0.2

    def __post_init__(self):
        super().__post_init__()
        _check_test_size(self.test_size)


@register
class DiabetesDataset(InMemoryDataset):
    """Diabetes regression: inputs (N, 10) float32, targets (N,) float32. With ``normalize``, features
    and target are standardised with training-split statistics (no leakage from val/test)."""

    config: DiabetesConfig
    ignored_fields = ("data_dir",)

    def load_splits(self):
        x, y = load_diabetes(return_X_y=True, scaled=False)
        data = SupervisedBatch(x.astype(np.float32), y.astype(np.float32))
        train, (test, val) = random_split(
            data, {"test_size": self.config.test_size, "val_size": self.config.val_size}, self.config.split_seed
        )
        if not self.config.normalize:
            return train, val, test
        x_mean, x_std = train.input.mean(0), train.input.std(0)
        y_mean, y_std = train.target.mean(), train.target.std()

        def standardise(split):
            if split is None:
                return None
            return SupervisedBatch((split.input - x_mean) / x_std, (split.target - y_mean) / y_std)

        return standardise(train), standardise(val), standardise(test)
