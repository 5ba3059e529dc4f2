"""``NpyShardsDataset``: a user's own large arrays as ``.npy`` shard files, read a batch at a time from disk.

Layout of ``data_dir`` (what :func:`write_npy_shards` writes; ``np.save`` per shard writes the same):

    x_train_00000.npy  x_train_00001.npy  ...   y_train_00000.npy  y_train_00001.npy  ...
    x_val_00000.npy ...  y_val_00000.npy ...    x_test_00000.npy ...  y_test_00000.npy ...   (optional)

or a single ``x_train.npy`` / ``y_train.npy`` per array. Inputs (``x_*``) stay on disk in their stored dtype and are
read per batch; 1-D targets (``y_*``, class labels: a few bytes an example) are read into memory, other targets
stay on disk too. Shard ``i`` of ``x`` and of ``y`` hold the same examples.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from compoconf import register

from jax_trainer.datasets.batch import SupervisedBatch, unit_pixels
from jax_trainer.datasets.files import DataError, DataFileNotFoundError
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig
from jax_trainer.datasets.sources import ConcatRows, FileRows
from jax_trainer.datasets.splits import random_split

SPLITS = ("train", "val", "test")
MAX_SHARD_BYTES = 1 << 30  # default shard size of write_npy_shards: few files (one descriptor each), quick to copy


@dataclass
class NpyShardsConfig(DatasetConfig):
    """``data_dir`` holds the shards (see the module docstring). With ``normalize``, uint8 inputs are served as
    float32 in [0, 1]; ``mean`` and ``std`` (one value per channel, the inputs' last axis) then standardise
    ``(x - mean) / std``. Without ``x_val`` files, ``val_size`` examples are held out of the training shards."""

    val_size: float = 0.0
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None

    def __post_init__(self):
        super().__post_init__()
        if self.data_dir is None:
            raise ValueError("data_dir: NpyShardsDataset needs the folder of its .npy shards")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean: mean and std must be given together (one value per channel each)")
        if self.mean is not None:
            if len(self.mean) != len(self.std) or not self.mean:
                raise ValueError(f"std: needs as many values as mean ({len(self.mean)}), got {len(self.std)}")
            if any(not s > 0 for s in self.std):
                raise ValueError(f"std: every value must be > 0, got {self.std}")


def _shard_files(root: Path, key: str) -> list[Path]:
    """``key.npy`` or ``key_00000.npy ... key_NNNNN.npy`` (numbered from 0 without gaps), or [] when none."""
    single = root / f"{key}.npy"
    pattern = re.compile(rf"{re.escape(key)}_(\d+)\.npy")
    numbered = sorted((int(m.group(1)), p) for p in root.glob(f"{key}_*.npy") if (m := pattern.fullmatch(p.name)))
    if single.is_file() and numbered:
        raise DataError(f"{root} holds both {single.name} and {numbered[0][1].name}; keep one layout for {key}")
    if single.is_file():
        return [single]
    missing = sorted(set(range(len(numbered))) - {i for i, _ in numbered})
    if missing or len({i for i, _ in numbered}) != len(numbered):
        raise DataError(f"{root}: shards of {key} must be numbered 0..{len(numbered) - 1} once each; "
                        f"found {[p.name for _, p in numbered]}")
    return [p for _, p in numbered]


def open_npy(path: Path) -> FileRows:
    """The rows of one ``.npy`` file, left on disk; a DataError naming the file for anything but a C-ordered array
    of at least one dimension with a plain (non-object) dtype."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)  # reads the header only; nothing is paged in
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable .npy file of plain numeric rows ({err})") from err
    if not isinstance(mapped, np.memmap) or mapped.ndim == 0 or not mapped.flags.c_contiguous:
        raise DataError(f"{path}: expected a C-ordered .npy array of at least one dimension (one row per example)")
    rows = FileRows(path, mapped.offset, mapped.shape[0], np.dtype((mapped.dtype, mapped.shape[1:])))
    del mapped
    return rows


@register
class NpyShardsDataset(InMemoryDataset):
    """Train, val and test splits from ``.npy`` shards in ``data_dir``, read per batch (see the module docstring);
    inputs scaled and standardised per batch as ``NpyShardsConfig`` says, targets as stored."""

    config: NpyShardsConfig

    def __init__(self, config: NpyShardsConfig):
        super().__init__(config)
        self.root = Path(config.data_dir)
        if not self.root.is_dir():
            raise DataFileNotFoundError(f"NpyShardsDataset data_dir {self.root} is not a folder of .npy shards")
        self.files = {split: (_shard_files(self.root, f"x_{split}"), _shard_files(self.root, f"y_{split}"))
                      for split in SPLITS}
        if not self.files["train"][0]:
            raise DataFileNotFoundError(
                f"NpyShardsDataset: no x_train.npy or x_train_00000.npy in {self.root} (write them with "
                f"jax_trainer.datasets.write_npy_shards or `jax-trainer shards`)"
            )
        mean = None if config.mean is None else np.asarray(config.mean, np.float32)
        self._scale = (mean, None if config.std is None else np.asarray(config.std, np.float32))

    def _open(self, split: str) -> SupervisedBatch | None:
        xs, ys = self.files[split]
        if not xs and not ys:
            return None
        if len(xs) != len(ys):
            raise DataError(f"{self.root}: {len(xs)} x_{split} shard(s) but {len(ys)} y_{split} shard(s)")
        inputs, targets = [open_npy(p) for p in xs], [open_npy(p) for p in ys]
        for x, y, x_path, y_path in zip(inputs, targets, xs, ys):
            if len(x) != len(y):
                raise DataError(f"{x_path} has {len(x)} rows but {y_path} has {len(y)}")
        x = ConcatRows(inputs, name=f"x_{split} in {self.root}")
        y = ConcatRows(targets, name=f"y_{split} in {self.root}")
        if y.ndim == 1:
            y = y[np.arange(len(y))]
        mean = self._scale[0]
        if mean is not None and (x.ndim < 2 or x.shape[-1] != len(mean)):
            raise DataError(f"mean and std have {len(mean)} values, but rows of x_{split} have shape "
                            f"{list(x.shape[1:])}; expected {len(mean)} channels on the last axis")
        return SupervisedBatch(x, y)

    def load_splits(self):
        train, val, test = (self._open(split) for split in SPLITS)
        if val is None:
            train, (val,) = random_split(train, {"val_size": self.config.val_size}, self.config.split_seed)
        return train, val, test

    def transform(self, batch: SupervisedBatch) -> SupervisedBatch:
        """uint8 inputs -> float32 in [0, 1] with ``normalize``; then ``(x - mean) / std`` when given."""
        x, mean, std = batch.input, *self._scale
        if self.config.normalize and x.dtype == np.uint8:
            return SupervisedBatch(unit_pixels(x, mean, std), batch.target)
        if mean is not None:
            x = x.astype(np.float32, copy=x is batch.input)  # never write into the gathered rows' owner
            x -= mean
            x /= std
        return SupervisedBatch(x, batch.target)


def write_npy_shards(
    out_dir: str | os.PathLike, arrays: Mapping[str, np.ndarray], rows_per_shard: Optional[int] = None
) -> list[Path]:
    """Write ``arrays`` (keys ``x_train``, ``y_train`` and optionally ``x_val``, ``y_val``, ``x_test``, ``y_test``;
    numpy arrays or memory-maps, read one shard at a time) as the ``.npy`` shards ``NpyShardsDataset`` reads.
    ``rows_per_shard`` defaults to about 1 GiB of inputs a shard. Each file is written under a temporary name and
    renamed when complete; a folder that already holds shards of these arrays is refused. Returns the files."""
    out = Path(out_dir)
    known = {f"{xy}_{split}" for split in SPLITS for xy in "xy"}
    unknown = sorted(set(arrays) - known)
    if unknown or "x_train" not in arrays:
        raise DataError(f"write_npy_shards: keys must include x_train and lie in {sorted(known)}; got {sorted(arrays)}")
    for split in SPLITS:
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if (x is None) != (y is None) or (x is not None and len(x) != len(y)):
            raise DataError(f"write_npy_shards: x_{split} and y_{split} must come together with as many rows each")
    for key, array in arrays.items():
        if np.asarray(array[:0]).dtype.hasobject or np.ndim(array) == 0:
            raise DataError(f"write_npy_shards: {key} must be an array of rows with a plain dtype (no objects)")
    if rows_per_shard is not None and rows_per_shard < 1:
        raise DataError(f"write_npy_shards: rows_per_shard must be >= 1, got {rows_per_shard}")
    out.mkdir(parents=True, exist_ok=True)
    existing = [p.name for key in arrays for p in (out / f"{key}.npy", *out.glob(f"{key}_*.npy")) if p.exists()]
    if existing:
        raise DataError(f"write_npy_shards: {out} already holds {sorted(existing)[:3]}; write to an empty folder")
    written = []
    for split in SPLITS:
        x = arrays.get(f"x_{split}")
        if x is None:
            continue
        row_bytes = max(1, int(np.prod(np.shape(x)[1:])) * np.asarray(x[:0]).dtype.itemsize)
        per_shard = rows_per_shard or max(1, MAX_SHARD_BYTES // row_bytes)
        for key in (f"x_{split}", f"y_{split}"):
            array = arrays[key]
            for index, start in enumerate(range(0, max(len(array), 1), per_shard)):
                path = out / f"{key}_{index:05d}.npy"
                tmp = path.with_name(path.name + ".tmp")
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(array[start : start + per_shard]), allow_pickle=False)
                os.replace(tmp, path)
                written.append(path)
    return written


def shards_from_npz(npz_path: str | os.PathLike, out_dir: str | os.PathLike, rows_per_shard: Optional[int] = None):
    """``jax-trainer shards NPZ OUT_DIR``: :func:`write_npy_shards` of an ``.npz`` file's arrays (read into memory
    one by one, no pickle; for data larger than memory call ``write_npy_shards`` with memory-maps)."""
    path = Path(npz_path)
    if not path.is_file():
        raise DataFileNotFoundError(f"jax-trainer shards: {path} not found; expected an .npz file of x_train, y_train")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"jax-trainer shards: {path} is not a readable .npz file of plain arrays ({err})") from err
    return write_npy_shards(out_dir, arrays, rows_per_shard)
