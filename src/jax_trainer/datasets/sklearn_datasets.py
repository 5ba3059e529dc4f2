"""Small datasets bundled with scikit-learn: usable offline, fast enough for tests and demos."""

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from compoconf import register

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig, check_split_size
from jax_trainer.datasets.splits import random_split


@dataclass
class _HoldoutConfig(DatasetConfig):
    """These datasets ship without a test split: ``test_size`` and ``val_size`` are both taken
    from all examples (fractions of the whole, or counts)."""

    test_size: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        check_split_size("test_size", self.test_size)


class _HoldoutDataset(InMemoryDataset):
    ignored_fields = ("data_dir",)

    def _three_way(self, data: SupervisedBatch):
        cfg = self.config
        sizes = {"test_size": cfg.test_size, "val_size": cfg.val_size}
        train, (test, val) = random_split(data, sizes, cfg.split_seed)
        return train, val, test


@dataclass
class DigitsConfig(_HoldoutConfig):
    """Config of ``DigitsDataset`` (1797 examples)."""


@register
class DigitsDataset(_HoldoutDataset):
    """8x8 handwritten digits: inputs (N, 8, 8) float32, in [0, 1] when ``normalize`` (else the raw
    0..16 intensities); targets int32 in 0..9."""

    config: DigitsConfig

    def load_splits(self):
        images, target = _digits_arrays()
        images = images.astype(np.float32)
        if self.config.normalize:
            images = images / 16.0
        return self._three_way(SupervisedBatch(images, target.astype(np.int32)))


@dataclass
class DiabetesConfig(_HoldoutConfig):
    """Config of ``DiabetesDataset`` (442 examples)."""


@register
class DiabetesDataset(_HoldoutDataset):
    """Diabetes regression: inputs (N, 10) float32, targets (N,) float32. With ``normalize``, features
    and target are standardised with training-split statistics (no leakage from val/test); ``target_scale()``
    gives the target's so that ``RegressionTrainer`` reports its metrics in the target's own units."""

    config: DiabetesConfig

    def target_scale(self) -> tuple[float, float] | None:
        if not self.config.normalize:
            return None
        target = self._raw_splits()[0].target
        return float(target.mean()), float(target.std())

    def _raw_splits(self):
        from sklearn.datasets import load_diabetes  # pylint: disable=import-outside-toplevel  (seconds to import)

        x, y = load_diabetes(return_X_y=True, scaled=False)
        return self._three_way(SupervisedBatch(x.astype(np.float32), y.astype(np.float32)))

    def load_splits(self):
        train, val, test = self._raw_splits()
        if not self.config.normalize:
            return train, val, test
        x_mean, x_std = train.input.mean(0), train.input.std(0)
        y_mean, y_std = train.target.mean(), train.target.std()

        def standardise(split):
            if split is None:
                return None
            return SupervisedBatch((split.input - x_mean) / x_std, (split.target - y_mean) / y_std)

        return standardise(train), standardise(val), standardise(test)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits images (N, 8, 8) and targets, the arrays of ``sklearn.datasets.load_digits``. Importing scikit-learn
    takes seconds (most of a process's time to its first step), so its bundled CSV is read directly where it is
    (``sklearn/datasets/data/digits.csv.gz``, found without importing the package); ``load_digits`` otherwise."""
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

        digits = load_digits()
        return digits.images, digits.target
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)
