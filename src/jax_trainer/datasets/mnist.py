"""MNIST from the IDX files of the original distribution (plain or gzipped), read with numpy."""

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from compoconf import register

from jax_trainer.datasets.batch import SupervisedBatch, unit_pixels
from jax_trainer.datasets.files import DataError, find_file
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig
from jax_trainer.datasets.sources import FileRows
from jax_trainer.datasets.splits import random_split

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _idx_header(raw: bytes, path: Path, size: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, data offset) from an IDX header: 2 zero bytes, a type code, the number of dims, big-endian
    int32 dims; a DataError naming the file for a bad magic number or a size that does not match."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header of {ndim} dims is cut short ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes), file has {size} bytes")
    return dtype, shape, header


def read_idx(path: Path) -> np.ndarray:
    """Parse a whole IDX file into memory (plain or gzipped), in native byte order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    dtype, shape, header = _idx_header(raw, path, len(raw))
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def open_idx(path: Path) -> FileRows | np.ndarray:
    """An IDX file's rows as stored: left on disk (a FileRows) when plain, read into memory when gzipped (a gzip
    stream cannot be read at random). No float copy either way."""
    if path.suffix == ".gz":
        return read_idx(path)
    with open(path, "rb") as f:
        head = f.read(4 + 4 * 255)
    dtype, shape, header = _idx_header(head, path, path.stat().st_size)
    if not shape:
        raise DataError(f"{path}: an IDX file of rows needs at least one dimension, got a scalar")
    return FileRows(path, header, shape[0], np.dtype((dtype, shape[1:])))


@dataclass
class MNISTConfig(DatasetConfig):
    """Looks in ``data_dir`` and in torchvision's layout ``data_dir/MNIST/raw``."""

    data_dir: str = "data/"
    val_size: float = 5000


@register
class MNISTDataset(InMemoryDataset):
    """Inputs (N, 28, 28) float32 scaled to [0, 1], standardised with the MNIST mean/std when
    ``normalize``; targets int32. Validation examples are held out of the training files. Images stay in
    the files as uint8 (gzipped files: uint8 in memory) and are scaled a batch at a time."""

    config: MNISTConfig

    def __init__(self, config: MNISTConfig):
        super().__init__(config)
        root = Path(config.data_dir)
        dirs = [root, root / "MNIST" / "raw"]
        self.paths = {
            key: find_file(dirs, [name, name + ".gz"], f"MNIST IDX file {name}[.gz]")
            for key, name in _FILES.items()
        }

    def _split(self, images_key: str, labels_key: str) -> SupervisedBatch:
        images_path, labels_path = self.paths[images_key], self.paths[labels_key]
        images = open_idx(images_path)
        labels = read_idx(labels_path).astype(np.int32)
        if len(images) != len(labels):
            raise DataError(f"{images_path} has {len(images)} images, {labels_path} has {len(labels)} labels")
        return SupervisedBatch(images, labels)

    def transform(self, batch: SupervisedBatch) -> SupervisedBatch:
        """Stored pixels -> float32 in [0, 1], then (x - mean) / std with ``normalize``."""
        scale = (MNIST_MEAN, MNIST_STD) if self.config.normalize else ()
        return SupervisedBatch(unit_pixels(batch.input, *scale), batch.target)

    def load_splits(self):
        cfg = self.config
        train_data = self._split("train_images", "train_labels")
        train, (val,) = random_split(train_data, {"val_size": cfg.val_size}, cfg.split_seed)
        return train, val, self._split("test_images", "test_labels")
