"""Replicated vs fsdp-sharded train state on 8 forced CPU devices (one process): bytes of the train state on the
fullest device, and steps/s of the zoo MLP (2 x 512 hidden) on digits, batch 64. A record, not a bar: on CPU the
8 "devices" share the same cores, so their steps/s say little about accelerators."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "digits_mlp.yaml"
SCRIPT = """
import json, sys, time, jax
from jax_trainer import run
from jax_trainer.config import load_config
example, log_dir, mesh, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
overrides = [f"trainer.logger.log_dir={log_dir}", f"trainer.train_epochs={epochs}", "trainer.enable_progress_bar=false",
             "trainer.callbacks={}", "trainer.logger.tool_config=null", "model.hidden_dims=[512, 512]",
             f"trainer.mesh={mesh}", "trainer.log_grad_norm=false", "optimizer.learning_rate.warmup_steps=2"]
config = load_config(example, overrides)
dataset, splits = run.build_data(config)
trainer = run.build_trainer(config, dataset.example_batch(), write_run_dir=False)
trainer.train_model(splits.train, None)
times = [json.load(open(f"{log_dir}/metrics/train_epoch_{e:04d}.json"))["train/epoch_time"] for e in range(2, epochs + 1)]
elapsed, steps = sum(times), len(splits.train) * (epochs - 1)  # epoch 1 compiles
per_device = {}
for leaf in jax.tree.leaves(trainer.state):
    for shard in leaf.addressable_shards:
        per_device[shard.device.id] = per_device.get(shard.device.id, 0) + shard.data.nbytes
total = sum(leaf.nbytes for leaf in jax.tree.leaves(trainer.state))
print(json.dumps({"state_bytes": total, "max_device_bytes": max(per_device.values()), "steps_per_s": steps / elapsed}))
"""


@pytest.mark.parametrize("layout, mesh", [("replicated", "{data: 8}"), ("fsdp", "{data: 1, fsdp: 8}")])
def test_sharded_state_bytes_and_speed(benchmark, layout, mesh, quick, tmp_path):
    epochs = 2 if quick else 10
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}

    def measure() -> dict:
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(EXAMPLE), str(tmp_path / layout), mesh, str(epochs)],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    found = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(found)
    share = found["max_device_bytes"] / found["state_bytes"]
    print(f"\n{layout}: {found['max_device_bytes'] / 2**20:.2f} MiB of {found['state_bytes'] / 2**20:.2f} MiB on the "
          f"fullest device ({share:.3f}), {found['steps_per_s']:.0f} steps/s")
    assert share <= (1.0 if layout == "replicated" else 1 / 8 * 1.1)
