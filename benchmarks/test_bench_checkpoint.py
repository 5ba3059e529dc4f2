"""What a checkpoint every epoch (ModelCheckpoint, save_last) adds to an MLP-digits epoch: orbax's asynchronous
save as the trainer does it, and the same save waited for before the next epoch."""

from jax_trainer import bench
from jax_trainer.config import parse


def test_checkpoint_cost_per_epoch(benchmark, quick):
    config = parse(bench.MLP_DIGITS)
    steps, rounds = (4, 1) if quick else (300, 3)
    costs = benchmark.pedantic(bench.checkpoint_cost, args=(config, "linen", steps, rounds), rounds=1, iterations=1)
    benchmark.extra_info.update(costs)
    print(f"\ncheckpoint every epoch adds: {costs}")
    assert set(costs) == {"async_ms_per_epoch", "sync_ms_per_epoch"}
