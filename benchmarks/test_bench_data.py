"""Host batches/s of the data paths on CIFAR-sized synthetic uint8 data (50,000 x 32x32x3, batch 128, shuffled,
standardised per channel), against the zoo CNN's step rate on the same batches, with each path's peak resident
memory (every variant in its own process, so its peak is its own):

- ``in_memory``: the whole set converted to float32 up front (what MNISTDataset/CIFAR10Dataset did), then
  NumpyLoader; ``setup s`` is the conversion;
- ``files_w0`` / ``files_w2``: NpyShardsDataset, rows read per batch with ``os.pread``, 0 and 2 prefetch threads;
- ``memmap_w0``: the same rows through ``np.load(mmap_mode="r")`` (the alternative to pread: its pages count in the
  process's resident memory);
- ``cnn_step``: the hand-written linen step of the zoo CNN on one fixed batch (steps/s), and ``cnn_fed_w2`` the
  same step fed by ``files_w2``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

SCRIPT = """
import json, sys, time
import numpy as np
from jax_trainer.bench import peak_host_memory_mib
from jax_trainer.datasets import DatasetInterface, NpyShardsConfig, NumpyLoader, SupervisedBatch
from jax_trainer.datasets.cifar import CIFAR10_MEAN, CIFAR10_STD

variant, data_dir, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
setup = time.perf_counter()
cfg = dict(data_dir=data_dir, global_batch_size=128, mean=CIFAR10_MEAN.tolist(), std=CIFAR10_STD.tolist())
if variant == "in_memory":
    x = np.load(data_dir + "/x_train.npy")
    x = (x.astype(np.float32) / 255.0 - CIFAR10_MEAN) / CIFAR10_STD
    loader = NumpyLoader(SupervisedBatch(x, np.load(data_dir + "/y_train.npy")), 128, shuffle=True, drop_last=True)
elif variant == "memmap_w0":
    ds = NpyShardsConfig(**cfg).instantiate(DatasetInterface)
    rows = SupervisedBatch(np.load(data_dir + "/x_train.npy", mmap_mode="r"), np.load(data_dir + "/y_train.npy"))
    loader = NumpyLoader(rows, 128, shuffle=True, drop_last=True, transform=ds.transform)
else:
    workers = 0 if variant == "files_w0" else 2
    loader = NpyShardsConfig(**cfg, num_workers=workers).instantiate(DatasetInterface).build().train
setup = time.perf_counter() - setup

def batches_of(loader):
    while True:
        yield from loader

if variant.startswith("cnn"):
    import jax, optax
    from jax_trainer.bench import CNN_DIGITS
    from jax_trainer.config import parse
    from jax_trainer.zoo.reference_steps import REFERENCE_STEPS
    model = parse({**CNN_DIGITS, "trainer": {**CNN_DIGITS["trainer"], "model_mode": "linen"}}).model  # the zoo CNN
    first = next(iter(loader))
    state, step = REFERENCE_STEPS["linen"](model, 0, optax.adamw(1e-3), first)
    for _ in range(3):
        state, metrics = step(state, first)
    jax.block_until_ready(state)
    source = batches_of(loader) if variant == "cnn_fed_w2" else iter(lambda: first, None)
    start = time.perf_counter()
    for _, batch in zip(range(batches), source):
        state, metrics = step(state, batch)
    jax.block_until_ready(state)
else:
    source = batches_of(loader)
    next(source)
    start = time.perf_counter()
    for _, batch in zip(range(batches), source):
        pass
rate = batches / (time.perf_counter() - start)
print(json.dumps({"rate": rate, "setup_s": setup, "peak_mib": peak_host_memory_mib()}))
"""
VARIANTS = ("in_memory", "files_w0", "files_w2", "memmap_w0", "cnn_step", "cnn_fed_w2")


def _run(variant: str, data_dir, batches: int) -> dict:
    done = subprocess.run([sys.executable, "-c", SCRIPT, variant, str(data_dir), str(batches)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_host_batches_per_second_against_the_cnn_step(benchmark, quick, tmp_path):
    rows = 2048 if quick else 50_000
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x_train.npy", np.frombuffer(rng.bytes(rows * 3072), np.uint8).reshape(rows, 32, 32, 3))
    np.save(tmp_path / "y_train.npy", rng.integers(0, 10, rows, dtype=np.uint8))
    # A quick run exercises both branches of the script once: it measures nothing.
    variants = ("files_w2", "cnn_fed_w2") if quick else VARIANTS
    counts = {v: (4 if quick else (60 if v.startswith("cnn") else 1500)) for v in variants}

    def measure() -> dict:
        return {v: _run(v, tmp_path, counts[v]) for v in variants}

    results = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(results)
    lines = [f"{rows} x 32x32x3 uint8, batch 128, shuffled, standardised per channel",
             f"{'variant':<12}{'batches/s':>11}{'setup s':>9}{'peak MiB':>10}"]
    lines += [f"{v:<12}{r['rate']:>11.1f}{r['setup_s']:>9.2f}{r['peak_mib']:>10.0f}" for v, r in results.items()]
    print("\n" + "\n".join(lines))
    assert all(r["rate"] > 0 for r in results.values())
