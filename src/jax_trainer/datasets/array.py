"""Datasets from user arrays: an ``.npz`` file named in the config, or arrays passed in code."""

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from compoconf import register

from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.files import DataError, DataFileNotFoundError
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig
from jax_trainer.datasets.splits import random_split
from jax_trainer.logger.keys import LOADER_NAME_RULE, is_loader_name

_EXPECTED = (
    "an .npz file with arrays x_train, y_train and optionally x_val, y_val, x_test, y_test (or named splits "
    "x_val_<name>, y_val_<name>, x_test_<name>, y_test_<name>)"
)


@dataclass
class ArrayDatasetConfig(DatasetConfig):
    """``data_file`` is resolved against ``data_dir`` when that is set. When the file has no
    validation arrays, ``val_size`` examples are held out of the training arrays instead. Named splits
    (``x_val_clean``, ``y_val_clean``, ``x_val_noisy``, ...) give one loader each (``val/clean/acc``, ...)."""

    data_file: Optional[str] = None
    val_size: float = 0.0


@register
class ArrayDataset(InMemoryDataset):
    """Arrays as stored (no rescaling; ``normalize`` is ignored). Build from code with
    ``ArrayDatasetConfig(...).instantiate(DatasetInterface, arrays={"x_train": ..., ...})``."""

    config: ArrayDatasetConfig
    ignored_fields = ("normalize",)

    def __init__(self, config: ArrayDatasetConfig, arrays: Optional[Mapping[str, np.ndarray]] = None):
        super().__init__(config)
        if (arrays is None) == (config.data_file is None):
            raise DataError("ArrayDataset needs exactly one of config.data_file or the arrays argument")
        self._arrays = arrays
        self._path = None
        if arrays is None:
            path = Path(config.data_file)
            if config.data_dir is not None and not path.is_absolute():
                path = Path(config.data_dir) / path
            if not path.is_file():
                raise DataFileNotFoundError(f"ArrayDataset data_file {path} not found; expected {_EXPECTED}")
            self._path = path

    def _load_arrays(self) -> Mapping[str, np.ndarray]:
        if self._arrays is not None:
            return self._arrays
        try:
            loaded = np.load(self._path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DataError(f"ArrayDataset data_file {self._path} holds a single array; expected {_EXPECTED}")
            with loaded as npz:
                return {key: npz[key] for key in npz.files}
        except DataError:
            raise
        except ValueError as err:
            if "allow_pickle" not in str(err):  # a damaged member (bad header, wrong size)
                raise DataError(f"ArrayDataset data_file {self._path} is not a readable .npz file ({err})") from err
            # allow_pickle=False refuses object arrays: loading them would unpickle, i.e. run code
            raise DataError(
                f"ArrayDataset data_file {self._path} holds an object array, which is not loaded (it needs pickle); "
                f"expected {_EXPECTED} of plain numeric arrays ({err})"
            ) from err
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(
                f"ArrayDataset data_file {self._path} is not a readable .npz file ({type(err).__name__}: {err}); "
                f"expected {_EXPECTED}"
            ) from err

    def load_splits(self):
        arrays = self._load_arrays()
        source = self._path if self._arrays is None else "arrays argument"

        def pair(split: str) -> SupervisedBatch | None:
            x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
            if (x is None) != (y is None):
                raise DataError(f"{source}: x_{split} and y_{split} must come together; expected {_EXPECTED}")
            if x is not None and len(x) != len(y):
                raise DataError(f"{source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            return None if x is None else SupervisedBatch(np.asarray(x), np.asarray(y))

        def split_or_named(split: str):
            """``x_<split>``/``y_<split>``, or named splits ``x_<split>_<name>``/``y_<split>_<name>`` as a dict."""
            prefixes = (f"x_{split}_", f"y_{split}_")
            names = list(dict.fromkeys(k.split("_", 2)[2] for k in arrays if k.startswith(prefixes)))
            plain = pair(split)
            if not names:
                return plain
            if plain is not None:
                raise DataError(f"{source}: x_{split} and x_{split}_<name> arrays together; give one form or the other")
            for name in names:
                if not is_loader_name(name):
                    raise DataError(f"{source}: split name {name!r} of x_{split}_{name}: expected {LOADER_NAME_RULE}")
            return {name: pair(f"{split}_{name}") for name in names}

        train = pair("train")
        if train is None:
            raise DataError(f"{source}: no x_train/y_train; expected {_EXPECTED}")
        val = split_or_named("val")
        if val is None:
            train, (val,) = random_split(train, {"val_size": self.config.val_size}, self.config.split_seed)
        return train, val, split_or_named("test")
