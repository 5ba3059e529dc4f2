"""Training from ~400 MB of uint8 shards on disk holds the batches, not the set: peak resident memory (training, then
one whole pass over the 403 MB) within 150 MB of the same run on a tiny set (the model's own), and the metrics and
parameters bitwise those of the in-memory
float32 path (the whole set converted up front, as the bundled datasets did). Each run is its own process, so its
peak (VmHWM) is its own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from trainer_helpers import subprocess_env

ROWS_PER_SHARD, SHARDS = 32768, 4  # 131072 CIFAR-sized rows: 403 MB of uint8
MEAN, STD = [0.49, 0.48, 0.45], [0.2, 0.2, 0.2]
SCRIPT = """
import hashlib, json, sys
from pathlib import Path
import numpy as np
from jax_trainer import run
from jax_trainer.bench import peak_host_memory_mib
from jax_trainer.config import parse
from jax_trainer.datasets import ArrayDatasetConfig, DatasetInterface, NumpyLoader
from trainer_helpers import model_weights

how, data_dir, log_dir, mean, std = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
config = parse({
    "seed": 5,
    "trainer": {"class_name": "ImgClassifierTrainer", "train_epochs": 1, "max_steps": 24, "enable_progress_bar": False,
                "logger": {"log_dir": log_dir, "log_steps_every": 8}},
    "model": {"class_name": "MLPClassifier", "hidden_dims": [16], "num_classes": 10},
    "optimizer": {"class_name": "AdamW", "learning_rate": 1.0e-3},
    "dataset": {"class_name": "NpyShardsDataset", "data_dir": data_dir, "global_batch_size": 128, "mean": mean,
                "std": std, "num_workers": 2},
})
if how == "memory":  # the in-memory path: every array read whole, the inputs converted to float32 up front
    def whole(key, scale):  # (x.astype(float32) / 255 - mean) / std, computed in place shard by shard
        parts = [np.load(p, mmap_mode="r") for p in sorted(Path(data_dir).glob(key + "_*.npy"))]
        out = np.empty((sum(map(len, parts)), *parts[0].shape[1:]), np.float32 if scale else parts[0].dtype)
        start = 0
        for part in parts:
            chunk = out[start : start + len(part)]
            if scale:
                np.divide(part, np.float32(255.0), out=chunk)
                chunk -= np.float32(mean)
                chunk /= np.float32(std)
            else:
                chunk[...] = part
            start += len(part)
        return out
    arrays = {key: whole(key, key.startswith("x")) for key in ("x_train", "y_train", "x_val", "y_val")}
    ds = config.dataset
    dataset = ArrayDatasetConfig(global_batch_size=128, seed=ds.seed, split_seed=ds.split_seed).instantiate(
        DatasetInterface, arrays=arrays)
    splits = dataset.build()
else:
    dataset, splits = run.build_data(config)
trainer = run.build_trainer(config, dataset.example_batch())
results = trainer.train_model(splits.train, splits.val)
if how != "memory":  # then a whole shuffled pass over the stored rows: reading all of them holds a few batches
    rows = NumpyLoader(splits.train.arrays, 1024, shuffle=True, num_workers=2)
    assert sum(batch.size for batch in rows) == len(rows) * 1024 > 0
weights = model_weights(trainer)
digest = hashlib.sha256(b"".join(weights[k].tobytes() for k in sorted(weights))).hexdigest()
metrics = {p.name: json.loads(p.read_text()) for p in sorted((Path(log_dir) / "metrics").glob("*.json"))}
for values in metrics.values():
    values.pop("train/epoch_time", None)
print(json.dumps({"peak_mib": peak_host_memory_mib(), "results": results, "params": digest, "metrics": metrics}))
"""


def _write(folder, shards: int, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(shards):
        np.save(folder / f"x_train_{i:05d}.npy", np.frombuffer(rng.bytes(rows * 3072), np.uint8).reshape(rows, 32, 32, 3))
        np.save(folder / f"y_train_{i:05d}.npy", rng.integers(0, 10, rows, dtype=np.uint8))
    np.save(folder / "x_val_00000.npy", np.frombuffer(rng.bytes(256 * 3072), np.uint8).reshape(256, 32, 32, 3))
    np.save(folder / "y_val_00000.npy", rng.integers(0, 10, 256, dtype=np.uint8))


def test_training_from_disk_holds_batches_not_the_set_and_matches_in_memory(tmp_path):
    def start(how: str, data: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", SCRIPT, how, str(tmp_path / data), str(tmp_path / f"run_{how}"),
             json.dumps(MEAN), json.dumps(STD)],
            env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def finish(proc: subprocess.Popen) -> dict:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        return json.loads(stdout.strip().splitlines()[-1])

    _write(tmp_path / "small", 1, 1024, 1)
    _write(tmp_path / "big", SHARDS, ROWS_PER_SHARD, 0)
    assert sum(p.stat().st_size for p in (tmp_path / "big").glob("x_train_*")) > 400e6
    # The two runs compared for memory both compile (a cold cache: the same work); the in-memory run, compared
    # for numbers only, then finds their programs in the cache.
    procs = {"small": start("small", "small"), "files": start("files", "big")}
    out = {how: finish(proc) for how, proc in procs.items()}
    out["memory"] = finish(start("memory", "big"))
    growth = out["files"]["peak_mib"] - out["small"]["peak_mib"]
    print(f"\npeak MiB: files {out['files']['peak_mib']:.0f}, tiny set {out['small']['peak_mib']:.0f}, "
          f"in memory {out['memory']['peak_mib']:.0f}")
    assert growth < 150, out
    assert out["memory"]["peak_mib"] - out["small"]["peak_mib"] > 1000  # the float32 set itself: 1.6 GB
    assert out["files"]["metrics"] and out["files"]["metrics"] == out["memory"]["metrics"]
    assert out["files"]["results"] == out["memory"]["results"]
    assert out["files"]["params"] == out["memory"]["params"]
