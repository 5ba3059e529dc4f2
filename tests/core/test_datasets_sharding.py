"""Two processes over one set of shards on disk: each reads its own half of every global batch and nothing else
(the bytes it reads, from /proc/self/io, are its half of the set), the halves are disjoint, and together they are
the one-process order, epoch after epoch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from jax_trainer.datasets import DatasetInterface, NpyShardsConfig, NumpyLoader, write_npy_shards
from trainer_helpers import subprocess_env

ROWS, WIDTH, BATCH, EPOCHS = 4096, 256, 64, 2  # int32 rows of 1 KiB whose first value is the row's index
SCRIPT = """
import json, sys
from jax_trainer.datasets import DatasetInterface, NpyShardsConfig, NumpyLoader

def read_bytes():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))

data_dir, shard, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = NpyShardsConfig(data_dir=data_dir, global_batch_size=batch).instantiate(DatasetInterface)
train = ds.splits()[0]
loader = NumpyLoader(train, batch, shuffle=True, drop_last=True, seed=3, num_shards=2, shard_index=shard,
                     transform=ds.transform, num_workers=2)
before, seen = read_bytes(), []
for epoch in range(epochs):
    loader.set_epoch(epoch)
    seen.append([b.input[:, 0].tolist() for b in loader])
print(json.dumps({"rows": seen, "bytes_read": read_bytes() - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/io")
def test_two_processes_read_disjoint_halves_whose_union_is_the_one_process_order(tmp_path):
    x = np.zeros((ROWS, WIDTH), np.int32)
    x[:, 0] = np.arange(ROWS)
    write_npy_shards(tmp_path, {"x_train": x, "y_train": np.arange(ROWS) % 10}, rows_per_shard=1000)
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), str(shard), str(BATCH), str(EPOCHS)],
                         env=subprocess_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for shard in range(2)
    ]
    parts = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        parts.append(json.loads(out.strip().splitlines()[-1]))

    ds = NpyShardsConfig(data_dir=str(tmp_path), global_batch_size=BATCH).instantiate(DatasetInterface)
    whole = NumpyLoader(ds.splits()[0], BATCH, shuffle=True, drop_last=True, seed=3)
    for epoch in range(EPOCHS):
        whole.set_epoch(epoch)
        one_process = [b.input[:, 0].tolist() for b in whole]
        first, second = parts[0]["rows"][epoch], parts[1]["rows"][epoch]
        assert len(first) == len(second) == len(one_process) == ROWS // BATCH
        for a, b, both in zip(first, second, one_process):
            assert len(a) == len(b) == BATCH // 2 and not set(a) & set(b)
            assert a + b == both
    row_bytes = WIDTH * 4
    for part in parts:  # its half of every batch, read once an epoch; not the other half
        assert EPOCHS * ROWS // 2 * row_bytes <= part["bytes_read"] < EPOCHS * ROWS // 2 * row_bytes * 1.1, part
