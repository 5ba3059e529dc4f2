"""File-backed rows: FileRows/ConcatRows gathers, MNIST/CIFAR-10 read per batch bitwise as the whole-set float
conversion was, NpyShardsDataset and its writer, and the loader's prefetch threads (same batches, bounded, stop)."""

import threading
import time

import numpy as np
import pytest

from jax_trainer.datasets import (
    ArrayDatasetConfig,
    CIFAR10Config,
    ConcatRows,
    DatasetInterface,
    FileRows,
    MNISTConfig,
    RowSource,
    NpyShardsConfig,
    NumpyLoader,
    SupervisedBatch,
    write_npy_shards,
)
from jax_trainer.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD
from jax_trainer.datasets.files import DataError
from jax_trainer.datasets.mnist import MNIST_MEAN, MNIST_STD
from jax_trainer.datasets.splits import random_split

RNG = np.random.default_rng(0)


def _assert_same_batches(a, b):
    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for leaf_x, leaf_y in zip((x.input, x.target), (y.input, y.target)):
            assert leaf_x.dtype == leaf_y.dtype and leaf_x.shape == leaf_y.shape
            assert leaf_x.tobytes() == leaf_y.tobytes()  # bitwise


def test_file_rows_gather_any_rows_and_name_a_truncated_file(tmp_path):
    data = RNG.integers(0, 2**31, (50, 3, 4)).astype(">i4")
    (tmp_path / "rows.bin").write_bytes(b"HEAD" + data.tobytes())
    rows = FileRows(tmp_path / "rows.bin", 4, 50, np.dtype((">i4", (3, 4))))
    assert rows.shape == (50, 3, 4) and len(rows) == 50
    for index in ([7], [3, 4, 5, 6], [49, 0, 0, 12, 13, 2], []):
        np.testing.assert_array_equal(rows[np.array(index, np.int64)], data[index])
    split = rows.subset(np.arange(10, 30)).subset([0, 5, 19])
    np.testing.assert_array_equal(split[np.array([2, 0, 1])], data[[29, 10, 15]])
    with pytest.raises(IndexError, match=r"\[0, 50\)"):
        rows[np.array([50])]
    joined = ConcatRows([data[:7], rows.subset(np.arange(7, 50))])
    np.testing.assert_array_equal(joined[np.array([48, 1, 6, 7, 20])], data[[48, 1, 6, 7, 20]])
    with pytest.raises(DataError, match="need 2404 bytes, but the file has 2403"):
        (tmp_path / "short.bin").write_bytes(b"HEAD" + data.tobytes()[:-1])
        FileRows(tmp_path / "short.bin", 4, 50, np.dtype((">i4", (3, 4))))
    with pytest.raises(DataError, match="all parts must agree"):
        ConcatRows([data, data[:, :2]])


def _write_idx(path, array):
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes() + array.tobytes())


def _old_loader(images, labels, mean, std, normalize, val_size, seed=42, **kw):
    """The whole-set float conversion the bundled datasets did before they read per batch."""
    images = images.astype(np.float32) / 255.0
    if normalize:
        images = (images - mean) / std
    train, (_,) = random_split(SupervisedBatch(images, labels.astype(np.int32)), {"val_size": val_size}, seed)
    return NumpyLoader(train, 8, shuffle=True, drop_last=True, seed=seed, **kw)


@pytest.mark.parametrize("normalize", [True, False])
def test_mnist_and_cifar_batches_are_bitwise_those_of_the_whole_set_conversion(tmp_path, normalize):
    images, labels = RNG.integers(0, 256, (60, 28, 28), dtype=np.uint8), RNG.integers(0, 10, 60, dtype=np.uint8)
    for prefix, sl in (("train", slice(0, 50)), ("t10k", slice(50, 60))):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images[sl])
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels[sl])
    mnist = MNISTConfig(data_dir=str(tmp_path), val_size=10, global_batch_size=8, normalize=normalize)
    served = mnist.instantiate(DatasetInterface)
    assert isinstance(served.splits()[0].input, RowSource) and served.splits()[0].input.dtype == np.uint8
    _assert_same_batches(served.build().train, _old_loader(images[:50], labels[:50], MNIST_MEAN, MNIST_STD, normalize, 10))

    cifar_dir = tmp_path / "cifar"
    cifar_dir.mkdir()
    chw = RNG.integers(0, 256, (6 * 12, 3, 32, 32), dtype=np.uint8)
    cifar_labels = RNG.integers(0, 10, 6 * 12, dtype=np.uint8)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for i, name in enumerate(names):
        part = slice(12 * i, 12 * (i + 1))
        records = np.concatenate([cifar_labels[part, None], chw[part].reshape(12, -1)], axis=1)
        (cifar_dir / name).write_bytes(records.tobytes())
    cifar = CIFAR10Config(data_dir=str(cifar_dir), val_size=12, global_batch_size=8, normalize=normalize)
    hwc = chw.transpose(0, 2, 3, 1)
    _assert_same_batches(cifar.instantiate(DatasetInterface).build().train,
                         _old_loader(hwc[:60], cifar_labels[:60], CIFAR10_MEAN, CIFAR10_STD, normalize, 12))


def test_npy_shards_round_trip_bitwise_as_the_in_memory_dataset(tmp_path):
    x = RNG.integers(0, 256, (203, 4, 4, 3), dtype=np.uint8)
    y = RNG.integers(0, 10, 203).astype(np.int64)
    x_test, y_test = x[:17], y[:17]
    files = write_npy_shards(tmp_path, {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test},
                             rows_per_shard=50)
    assert [p.name for p in files][:5] == [f"x_train_0000{i}.npy" for i in range(5)]
    assert len(files) == 12 and not list(tmp_path.glob("*.tmp"))
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    ds = NpyShardsConfig(data_dir=str(tmp_path), global_batch_size=16, val_size=30, mean=mean, std=std,
                         num_workers=2).instantiate(DatasetInterface)
    assert ds.splits()[0].input.dtype == np.uint8  # stays on disk as stored
    floats = (x.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
    ref = ArrayDatasetConfig(global_batch_size=16, val_size=30).instantiate(
        DatasetInterface, arrays={"x_train": floats, "y_train": y, "x_test": floats[:17], "y_test": y_test})
    got, want = ds.build(), ref.build()
    for split in ("train", "val", "test"):
        _assert_same_batches(getattr(got, split), getattr(want, split))
    np.testing.assert_array_equal(ds.example_batch().input, ref.example_batch().input)
    with pytest.raises(DataError, match="already holds"):
        write_npy_shards(tmp_path, {"x_train": x, "y_train": y})


def test_npy_shards_bad_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        NpyShardsConfig(data_dir=str(tmp_path / "nowhere")).instantiate(DatasetInterface)
    with pytest.raises(FileNotFoundError, match="no x_train.npy or x_train_00000.npy"):
        NpyShardsConfig(data_dir=str(tmp_path)).instantiate(DatasetInterface)
    with pytest.raises(ValueError, match="mean and std must be given together"):
        NpyShardsConfig(data_dir=str(tmp_path), mean=[0.5])
    write_npy_shards(tmp_path, {"x_train": np.zeros((30, 2), np.uint8), "y_train": np.zeros(30)}, rows_per_shard=10)
    with pytest.raises(DataError, match="expected 3 channels"):
        NpyShardsConfig(data_dir=str(tmp_path), mean=[0, 0, 0], std=[1, 1, 1]).instantiate(DatasetInterface).build()
    (tmp_path / "y_train_00001.npy").rename(tmp_path / "y_train_00004.npy")
    with pytest.raises(DataError, match="numbered 0..2 once each"):
        NpyShardsConfig(data_dir=str(tmp_path)).instantiate(DatasetInterface)
    (tmp_path / "y_train_00004.npy").unlink()
    np.save(tmp_path / "y_train_00001.npy", np.zeros(9))
    with pytest.raises(DataError, match="x_train_00001.npy has 10 rows but .*y_train_00001.npy has 9"):
        NpyShardsConfig(data_dir=str(tmp_path), global_batch_size=4).instantiate(DatasetInterface).build()
    np.save(tmp_path / "y_train_00001.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="y_train_00001.npy is not a readable .npy"):
        NpyShardsConfig(data_dir=str(tmp_path), global_batch_size=4).instantiate(DatasetInterface).build()


class _Counting:
    """A transform that counts the batches prepared, to see how far the threads run ahead of the consumer."""

    def __init__(self):
        self.calls, self.lock = 0, threading.Lock()

    def __call__(self, batch):
        with self.lock:
            self.calls += 1
        return SupervisedBatch(batch.input.astype(np.float32) * 2, batch.target)


def _data_threads():
    return [t for t in threading.enumerate() if t.name.startswith("jax-trainer-data")]


@pytest.mark.parametrize("run", [1, 3])
def test_prefetch_serves_the_same_batches_and_positions_bounded_and_stops(run):
    arrays = SupervisedBatch(RNG.integers(0, 256, (101, 5), dtype=np.uint8), np.arange(101))

    def loader(workers, transform=None):
        return NumpyLoader(arrays, 8, shuffle=True, seed=5, num_workers=workers, prefetch_factor=2,
                           transform=transform or _Counting())

    def served(source):
        out = []
        for n, batch in source.iter_runs(run):
            out.append((n, batch, source.state_dict()))
        return out

    plain, threaded = served(loader(0)), served(loader(2))
    assert [(n, s) for n, _, s in plain] == [(n, s) for n, _, s in threaded]
    _assert_same_batches([b for _, b, _ in plain], [b for _, b, _ in threaded])

    counting, reference = _Counting(), loader(0)
    resumed = loader(2, counting)
    for source in (resumed, reference):
        source.load_state_dict({"epoch": 0, "batch_idx": 2})
    it = resumed.iter_runs(run)
    first = next(it)
    time.sleep(0.2)  # give the threads time to run as far ahead as they may
    assert 2 <= counting.calls <= 1 + 2 * 2  # the one consumed plus num_workers * prefetch_factor ahead
    _assert_same_batches([first[1]], [next(reference.iter_runs(run))[1]])
    it.close()
    assert not _data_threads()
    assert resumed.state_dict() == {"epoch": 0, "batch_idx": 2 + first[0]}


def test_prefetch_raises_a_read_error_where_the_batch_was_due(tmp_path):
    path = tmp_path / "rows.bin"
    path.write_bytes(bytes(40 * 4))
    rows = FileRows(path, 0, 40, np.dtype((np.uint8, (4,))))
    loader = NumpyLoader(SupervisedBatch(rows, np.arange(40)), 8, num_workers=2)
    path.write_bytes(bytes(20 * 4))  # the file shrinks under the run
    it = iter(loader)
    next(it), next(it)
    with pytest.raises(DataError, match="truncated"):
        next(it)
    assert loader.state_dict() == {"epoch": 0, "batch_idx": 2}
    it.close()
    assert not _data_threads()


def test_dataset_config_refuses_negative_workers():
    with pytest.raises(ValueError, match="num_workers"):
        NpyShardsConfig(data_dir=".", num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        NpyShardsConfig(data_dir=".", prefetch_factor=0)


def test_shards_command_writes_an_npz_as_shards_and_names_bad_input(tmp_path, capsys):
    from jax_trainer import cli  # pylint: disable=import-outside-toplevel

    x, y = RNG.integers(0, 256, (25, 3), dtype=np.uint8), np.arange(25)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y)
    assert cli.main(["shards", str(tmp_path / "data.npz"), str(tmp_path / "out"), "--rows-per-shard", "10"]) == 0
    assert "wrote 6 files" in capsys.readouterr().out
    ds = NpyShardsConfig(data_dir=str(tmp_path / "out"), global_batch_size=25).instantiate(DatasetInterface)
    batch = next(iter(ds.build().train))
    np.testing.assert_array_equal(batch.input, x[batch.target].astype(np.float32) / 255.0)
    np.save(tmp_path / "single.npy", x)
    assert cli.main(["shards", str(tmp_path / "single.npy"), str(tmp_path / "out2")]) == 2
    assert "single.npy is not a readable .npz" in capsys.readouterr().err
    assert cli.main(["shards", str(tmp_path / "data.npz"), str(tmp_path / "out")]) == 2  # not an empty folder
    assert "already holds" in capsys.readouterr().err
