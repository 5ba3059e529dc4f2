"""Every example under examples/ runs, in a quick mode (one or two tiny epochs through overrides): the YAML examples
through ``jax-trainer fit`` in this process, the 8-device data-parallel script in a subprocess of its own (its
XLA_FLAGS must be set before jax starts). MNIST and CIFAR-10 read tiny files written here in the published formats
(IDX, CIFAR-10 binary batches)."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jax_trainer import cli
from trainer_helpers import subprocess_env

EXAMPLES = Path(__file__).parents[2] / "examples"
QUICK = ["trainer.train_epochs=1", "trainer.enable_progress_bar=false", "trainer.logger.tool_config=null",
         "dataset.global_batch_size=128"]


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (gzipped): zero bytes, type code 0x08 (uint8), the number of dims, big-endian dims, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    for prefix, n in (("train", 48), ("t10k", 16)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return root


def fake_cifar10(root: Path) -> Path:
    """CIFAR-10 binary batches: records of a label byte and 3072 pixel bytes (R, G, B planes)."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        records = np.concatenate([rng.integers(0, 10, (8, 1)), rng.integers(0, 256, (8, 3072))], axis=1)
        records.astype(np.uint8).tofile(folder / name)
    return root


def val_metrics(run: Path, epoch: int = 1) -> dict:
    return json.loads((run / "metrics" / f"val_epoch_{epoch:04d}.json").read_text())


WARMUP = "optimizer.learning_rate.warmup_steps=1"  # the examples' warmups are longer than a quick run
CASES = {
    "own_nnx_classifier": ("own_nnx_classifier/config.yaml", [WARMUP, "model.channels=[4]"], "val/acc"),
    "own_linen_classifier": ("own_linen_classifier/config.yaml", [WARMUP, "model.channels=[4]"], "val/acc"),
    "regression": ("regression.yaml", ["trainer.train_epochs=2"], "val/mse"),
    "custom_trainer_nnx": ("custom_trainer/config.yaml", [], "val/nll"),
    "custom_trainer_linen": ("custom_trainer/config.yaml", ["trainer.model_mode=linen"], "val/nll"),
    "custom_callback": ("custom_callback/config.yaml", ["trainer.train_epochs=3", "trainer.callbacks.History.stop_at=0.0"], "val/acc"),
    "mnist": ("mnist.yaml", ["dataset.val_size=16", "dataset.global_batch_size=16", "model.channels=[4]", WARMUP], "val/acc"),
    "cifar10": ("cifar10.yaml", ["dataset.val_size=8", "dataset.global_batch_size=16", "model.channels=[4]", WARMUP], "val/acc"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_yaml_example_runs(name, tmp_path):
    config, extra, key = CASES[name]
    run = tmp_path / "run"
    overrides = [*QUICK, f"trainer.logger.log_dir={run}", *extra]
    if name == "mnist":
        overrides.append(f"dataset.data_dir={fake_mnist(tmp_path / 'mnist')}")
    if name == "cifar10":
        overrides.append(f"dataset.data_dir={fake_cifar10(tmp_path / 'data')}")
    assert cli.main(["fit", str(EXAMPLES / config), *overrides]) == 0
    assert np.isfinite(val_metrics(run)[key])
    assert (run / "config.yaml").is_file()
    if name == "regression":
        assert np.isfinite(val_metrics(run, 2)["val/r2"])
    if name == "custom_callback":  # stop_at 0.0: one row, then the callback stopped the run before epoch 2
        with (run / "history.csv").open() as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["epoch", "step", "val/acc"] and len(rows) == 2
        assert not (run / "metrics" / "val_epoch_0002.json").exists()


def test_data_parallel_example_runs_on_8_devices(tmp_path):
    env = subprocess_env(tmp_path)
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_PLATFORMS", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "data_parallel.py"), "--epochs", "1", "--log-dir", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "devices: 8 (cpu); a parameter lives on 8" in done.stdout
    assert "per-device batch: (8, 8, 8)" in done.stdout
