"""Built-in datasets: splits, determinism, normalisation, file parsing and missing-file errors."""

import gzip
import logging
from dataclasses import dataclass

import compoconf
import numpy as np
import pytest
import yaml
from compoconf import ConfigInterface

from jax_trainer.datasets import (
    ArrayDatasetConfig,
    CIFAR10Config,
    DatasetInterface,
    DiabetesConfig,
    DigitsConfig,
    MNISTConfig,
    NumpyLoader,
)
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.mnist import read_idx


@dataclass
class _Top(ConfigInterface):
    dataset: DatasetInterface.cfgtype = None


def _parse(data: dict):
    return compoconf.parse_config(_Top, {"dataset": data}).dataset


def _served(loader):
    """Every example a loader serves, in order: the values a training step sees (file-backed inputs are raw in
    ``splits()`` and scaled per batch)."""
    batches = list(loader)
    return np.concatenate([b.input for b in batches]), np.concatenate([b.target for b in batches])


def _sizes(splits):
    return tuple(None if loader is None else loader.num_examples for loader in (splits.train, splits.val, splits.test))


def test_digits_splits_are_deterministic_in_split_seed():
    ds = DigitsConfig(global_batch_size=64, val_size=0.1, test_size=0.2).instantiate(DatasetInterface)
    splits = ds.build()
    assert _sizes(splits) == (1258, 180, 359)
    train, val, test = ds.splits()
    assert train.input.shape == (1258, 8, 8) and train.input.dtype == np.float32 and train.target.dtype == np.int32
    assert 0.0 <= train.input.min() and train.input.max() == 1.0
    assert isinstance(splits.train, NumpyLoader) and splits.train.drop_last and splits.train.shuffle
    assert not splits.val.drop_last and not splits.val.shuffle and len(splits.val) == 3  # 180 = 64 + 64 + 52

    again = DigitsConfig(global_batch_size=64).instantiate(DatasetInterface).splits()
    other = DigitsConfig(global_batch_size=64, split_seed=7).instantiate(DatasetInterface).splits()
    for a, b in zip((train, val, test), again):
        np.testing.assert_array_equal(a.input, b.input)
        np.testing.assert_array_equal(a.target, b.target)
    assert not np.array_equal(val.target, other[1].target)


def test_digits_counts_and_raw_values():
    ds = DigitsConfig(val_size=100, test_size=0, normalize=False).instantiate(DatasetInterface)
    assert _sizes(ds.build()) == (1697, 100, None)
    assert ds.splits()[0].input.max() == 16.0
    example = ds.example_batch()
    assert example.input.shape == (128, 8, 8)


def test_split_leaving_no_training_data_is_rejected():
    with pytest.raises(ValueError, match="leave no training data"):
        DigitsConfig(val_size=0.5, test_size=0.6).instantiate(DatasetInterface).build()


def test_diabetes_is_standardised_with_training_statistics():
    train, val, test = DiabetesConfig(val_size=0.1, test_size=0.2).instantiate(DatasetInterface).splits()
    assert (train.size, val.size, test.size) == (310, 44, 88)
    assert train.input.shape == (310, 10) and train.target.shape == (310,)
    np.testing.assert_allclose(train.input.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.input.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose([train.target.mean(), train.target.std()], [0.0, 1.0], atol=1e-5)
    assert abs(val.target.mean()) > 1e-4  # val uses the train statistics, not its own
    raw = DiabetesConfig(normalize=False).instantiate(DatasetInterface).splits()[0]
    assert raw.target.min() >= 25.0


def test_parsed_config_logs_ignored_fields(caplog):
    cfg = _parse({"class_name": "DigitsDataset", "global_batch_size": 32, "num_workers": 4, "pin_memory": True})
    assert isinstance(cfg, DigitsConfig)
    with caplog.at_level(logging.DEBUG, logger="jax_trainer.datasets"):
        cfg.instantiate(DatasetInterface)
    assert "pin_memory" in caplog.text and "num_workers" not in caplog.text  # num_workers: prefetch threads


def test_local_batch_size_must_match_global():
    with pytest.raises(ValueError, match="local_batch_size 16"):
        DigitsConfig(global_batch_size=32, local_batch_size=16).instantiate(DatasetInterface).build()
    assert len(next(iter(DigitsConfig(global_batch_size=32, local_batch_size=32).instantiate(
        DatasetInterface).build().train)).target) == 32


def test_array_dataset_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(20, 3)).astype(np.float32), "y_train": np.arange(20),
        "x_test": rng.normal(size=(5, 3)).astype(np.float32), "y_test": np.arange(5),
    }
    np.savez(tmp_path / "data.npz", **arrays)
    cfg = _parse({"class_name": "ArrayDataset", "data_dir": str(tmp_path), "data_file": "data.npz",
                  "global_batch_size": 4, "val_size": 6})
    train, val, test = cfg.instantiate(DatasetInterface).splits()
    assert (train.size, val.size, test.size) == (14, 6, 5)
    assert sorted(np.concatenate([train.target, val.target]).tolist()) == list(range(20))
    np.testing.assert_array_equal(test.input, arrays["x_test"])


def test_array_dataset_from_arrays_keeps_given_validation():
    arrays = {"x_train": np.zeros((8, 2)), "y_train": np.zeros(8), "x_val": np.ones((3, 2)), "y_val": np.ones(3)}
    ds = ArrayDatasetConfig(global_batch_size=4, val_size=0.5).instantiate(DatasetInterface, arrays=arrays)
    assert _sizes(ds.build()) == (8, 3, None)
    with pytest.raises(DataError, match="x_test and y_test"):
        ArrayDatasetConfig().instantiate(DatasetInterface, arrays={**arrays, "x_test": np.zeros((1, 2))}).build()


def test_array_dataset_missing_file_names_path_and_format(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.npz.*x_train, y_train"):
        ArrayDatasetConfig(data_file=str(tmp_path / "missing.npz")).instantiate(DatasetInterface)


def test_array_dataset_garbage_or_object_npz_names_the_file(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip archive")
    objects = tmp_path / "objects.npz"
    np.savez(objects, x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.arange(2))
    truncated = tmp_path / "truncated.npz"
    np.savez(truncated, x_train=np.zeros((4, 2)), y_train=np.arange(4))
    truncated.write_bytes(truncated.read_bytes()[:60])
    single = tmp_path / "single.npz"
    with open(single, "wb") as handle:
        np.save(handle, np.zeros(3))
    cases = [(garbage, "not a readable .npz"), (objects, "object array"), (truncated, "not a readable"),
             (single, "single array")]
    for path, fragment in cases:
        with pytest.raises(DataError, match=fragment) as info:
            ArrayDatasetConfig(data_file=str(path), val_size=0.5).instantiate(DatasetInterface).build()
        assert str(path) in str(info.value)


def _write_idx(path, array: np.ndarray, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, ">i4").tobytes()
    (gzip.open if compress else open)(path, "wb").write(header + array.tobytes())


def _write_mnist(root, n_train=30, n_test=7):
    rng = np.random.default_rng(0)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        data[prefix] = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8))
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", data[prefix][0], compress=True)
        _write_idx(root / f"{prefix}-labels-idx1-ubyte", data[prefix][1])
    return data


def test_mnist_reads_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout is found too
    raw.mkdir(parents=True)
    data = _write_mnist(raw)
    ds = _parse({"class_name": "MNISTDataset", "data_dir": str(tmp_path), "val_size": 5, "normalize": False,
                 "global_batch_size": 8}).instantiate(DatasetInterface)
    train, val, test = ds.splits()
    assert (train.size, val.size, test.size) == (25, 5, 7)
    inputs, targets = _served(ds.build().test)
    np.testing.assert_allclose(inputs, data["t10k"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(targets, data["t10k"][1])
    assert targets.dtype == np.int32 and inputs.shape == (7, 28, 28)
    mnist = MNISTConfig(data_dir=str(tmp_path), val_size=5, global_batch_size=4).instantiate(DatasetInterface)
    normalized = _served(mnist.build().test)[0]
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, (data["t10k"][0] / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def test_read_idx_handles_wider_types_and_rejects_bad_files(tmp_path):
    values = (np.arange(12).reshape(3, 4) - 5).astype(">i4")
    _write_idx(tmp_path / "ints", values)
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), values)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "ints").read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"shape \(3, 4\)"):
        read_idx(tmp_path / "short")


def test_mnist_missing_file_names_path_and_format(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"IDX file t10k-labels-idx1-ubyte.*" + str(tmp_path)):
        MNISTConfig(data_dir=str(tmp_path)).instantiate(DatasetInterface)


def _cifar_records(labels, fill):
    records = []
    for label in labels:
        planes = [np.full(1024, fill[c] + label, np.uint8) for c in range(3)]
        records.append(np.concatenate([[label], *planes]).astype(np.uint8))
    return np.stack(records).tobytes()


def test_cifar10_reads_binary_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    for i in range(1, 6):
        (root / f"data_batch_{i}.bin").write_bytes(_cifar_records([i, i + 1], (10, 20, 30)))
    (root / "test_batch.bin").write_bytes(_cifar_records([7, 8, 9], (100, 150, 200)))
    ds = CIFAR10Config(data_dir=str(tmp_path), val_size=2, normalize=False, global_batch_size=4).instantiate(
        DatasetInterface
    )
    train, val, test = ds.splits()
    assert (train.size, val.size, test.size) == (8, 2, 3)
    inputs, targets = _served(ds.build().test)
    assert inputs.shape == (3, 32, 32, 3) and targets.tolist() == [7, 8, 9]
    np.testing.assert_allclose(inputs[1, 5, 9], np.array([108, 158, 208]) / 255.0, rtol=1e-6)
    assert sorted(np.concatenate([train.target, val.target]).tolist()) == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    cifar = CIFAR10Config(data_dir=str(tmp_path), val_size=0, global_batch_size=4).instantiate(DatasetInterface)
    normalized = _served(cifar.build().test)[0]
    expected = (np.array([108, 158, 208]) / 255.0 - [0.4914, 0.4822, 0.4465]) / [0.2023, 0.1994, 0.2010]
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized[1, 0, 0], expected, rtol=1e-5)


def test_cifar10_missing_and_damaged_files(tmp_path):
    for i in range(1, 5):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(_cifar_records([0], (0, 0, 0)))
    with pytest.raises(FileNotFoundError, match=r"data_batch_5\.bin.*binary version"):
        CIFAR10Config(data_dir=str(tmp_path)).instantiate(DatasetInterface)
    (tmp_path / "data_batch_5.bin").write_bytes(b"\x00" * 100)
    (tmp_path / "test_batch.bin").write_bytes(_cifar_records([0], (0, 0, 0)))
    with pytest.raises(ValueError, match="3073-byte"):
        CIFAR10Config(data_dir=str(tmp_path), val_size=0).instantiate(DatasetInterface).build()


def test_cifar10_label_beyond_nine_names_file_and_label(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(_cifar_records([1, 2], (0, 0, 0)))
    (tmp_path / "data_batch_3.bin").write_bytes(_cifar_records([4, 200, 9], (0, 0, 0)))
    (tmp_path / "test_batch.bin").write_bytes(_cifar_records([0], (0, 0, 0)))
    with pytest.raises(DataError) as info:
        CIFAR10Config(data_dir=str(tmp_path), val_size=0).instantiate(DatasetInterface).splits()
    message = str(info.value)
    assert str(tmp_path / "data_batch_3.bin") in message and "label 200" in message and "record 1" in message


@pytest.mark.parametrize(("text", "expected"), [("0.1", 0.1), ("5000", 5000), ("1.0e-1", 0.1), ("0", 0)])
def test_val_size_parses_fractions_and_counts(text, expected):
    assert _parse({"class_name": "MNISTDataset", "val_size": yaml.safe_load(text)}).val_size == expected


@pytest.mark.parametrize("bad", [1.5, -1])
def test_val_size_rejects_non_whole_counts(bad):
    with pytest.raises(Exception, match="val_size"):
        _parse({"class_name": "DigitsDataset", "val_size": bad})
