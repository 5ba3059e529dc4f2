"""CIFAR-10 from the official binary version (``cifar-10-batches-bin``), read with numpy."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from compoconf import register

from jax_trainer.datasets.batch import SupervisedBatch, unit_pixels
from jax_trainer.datasets.files import DataError, find_file
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig
from jax_trainer.datasets.sources import ConcatRows, FileRows
from jax_trainer.datasets.splits import random_split

_RECORD = 1 + 3 * 32 * 32  # label byte, then 1024 red, 1024 green, 1024 blue bytes (row-major)
_NUM_CLASSES = 10
_TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
_TEST_FILE = "test_batch.bin"
CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR10_STD = np.array([0.2023, 0.1994, 0.2010], np.float32)


_RECORD_DTYPE = np.dtype([("label", np.uint8), ("image", np.uint8, (3, 32, 32))])


def open_cifar_bin(path: Path) -> tuple[FileRows, np.ndarray]:
    """(images (N, 32, 32, 3) uint8 left in the file, labels (N,) int32 in memory) of one binary batch file; a
    DataError naming the file for a size that is not whole records or a label outside 0-9."""
    size = path.stat().st_size
    if size == 0 or size % _RECORD:
        raise DataError(f"{path}: {size} bytes is not a whole number of {_RECORD}-byte CIFAR-10 records")
    # The label column alone is copied out (one byte per 3073); the mapping is dropped right after.
    labels = np.array(np.memmap(path, _RECORD_DTYPE, mode="r")["label"], dtype=np.int32)
    bad = np.flatnonzero(labels >= _NUM_CLASSES)
    if bad.size:
        raise DataError(
            f"{path}: record {bad[0]} has label {labels[bad[0]]}, but CIFAR-10 labels are 0-{_NUM_CLASSES - 1} "
            f"({bad.size} such records); is this a CIFAR-100 or a damaged file?"
        )
    return FileRows(path, 0, size // _RECORD, _RECORD_DTYPE, field="image", axes=(1, 2, 0)), labels


@dataclass
class CIFAR10Config(DatasetConfig):
    """Looks in ``data_dir`` and in ``data_dir/cifar-10-batches-bin`` (where the archive unpacks)."""

    data_dir: str = "data/"
    val_size: float = 5000


@register
class CIFAR10Dataset(InMemoryDataset):
    """Inputs (N, 32, 32, 3) float32 scaled to [0, 1], standardised per channel with the CIFAR-10
    mean/std when ``normalize``; targets int32. Validation is held out of the five training batches. Images stay
    in the files as uint8 and are read and scaled a batch at a time (labels, 4 bytes an image, are in memory)."""

    config: CIFAR10Config

    def __init__(self, config: CIFAR10Config):
        super().__init__(config)
        root = Path(config.data_dir)
        dirs = [root, root / "cifar-10-batches-bin"]
        expected = "CIFAR-10 binary batch {} (the 'binary version' of the dataset)"
        self.train_paths = [find_file(dirs, [name], expected.format(name)) for name in _TRAIN_FILES]
        self.test_path = find_file(dirs, [_TEST_FILE], expected.format(_TEST_FILE))

    def _load(self, paths: list[Path]) -> SupervisedBatch:
        parts = [open_cifar_bin(p) for p in paths]
        images = ConcatRows([p[0] for p in parts], name=f"CIFAR-10 images of {', '.join(p.name for p in paths)}")
        return SupervisedBatch(images, np.concatenate([p[1] for p in parts]))

    def transform(self, batch: SupervisedBatch) -> SupervisedBatch:
        """Stored pixels -> float32 in [0, 1], then standardised per channel with ``normalize``."""
        scale = (CIFAR10_MEAN, CIFAR10_STD) if self.config.normalize else ()
        return SupervisedBatch(unit_pixels(batch.input, *scale), batch.target)

    def load_splits(self):
        cfg = self.config
        train, (val,) = random_split(self._load(self.train_paths), {"val_size": cfg.val_size}, cfg.split_seed)
        return train, val, self._load([self.test_path])
