"""Steps/s of the trainer (linen, nnx, K steps per dispatch) against hand-written jax.jit loops.

The bars are the issue's and are checked on MLP-digits, where the loop's own cost shows most (a small model,
18 steps per epoch); CNN-digits is measured and reported.
"""

import pytest

from jax_trainer import bench
from jax_trainer.config import parse

WORKLOADS = {"mlp_digits": bench.MLP_DIGITS, "cnn_digits": bench.CNN_DIGITS}
TRAINER_VS_RAW = 0.95  # trainer (either backend) / hand-written linen loop
NNX_VS_LINEN = 0.95  # trainer nnx / trainer linen
DISPATCH_VS_RAW = 1.4  # trainer with 16 steps per dispatch / hand-written per-step loop
DISPATCH_VS_SCAN = 0.95  # trainer with 16 steps per dispatch / hand-written lax.scan over the same runs


@pytest.mark.parametrize("workload", WORKLOADS)
def test_throughput(benchmark, workload, budget, quick):
    # The bars are checked on the budget `jax-trainer bench` uses: shorter runs vary by more than the margins.
    steps, rounds = budget if quick or workload != "mlp_digits" else (bench.STEPS, bench.ROUNDS)
    config = parse(WORKLOADS[workload])
    # A quick run compiles the CNN's scanned steps for nothing: MLP-digits already runs that code.
    variants = tuple(v for v in bench.VARIANTS if not (quick and workload == "cnn_digits" and "dispatch" in v))
    results = benchmark.pedantic(
        bench.compare, args=(config, steps, rounds, variants), rounds=1, iterations=1
    )
    benchmark.extra_info.update({v: results[v] for v in variants}, ratios=results["ratios"])
    print("\n" + bench.format_table(results, bench.describe(config, steps, rounds)))
    assert all(results[v] > 0 for v in variants)
    if quick or workload != "mlp_digits":
        return
    ratios = results["ratios"]
    failures = [v for v in ("trainer_linen", "trainer_nnx") if ratios[v] < TRAINER_VS_RAW]
    trainer_dispatch = [v for v in bench.VARIANTS if v.startswith("trainer") and "dispatch" in v]
    failures += [v for v in trainer_dispatch if ratios[v] < DISPATCH_VS_RAW]
    failures += [f"{v} vs raw_linen_dispatch16" for v in trainer_dispatch if results["vs_hand_written"][v] < DISPATCH_VS_SCAN]
    if results["trainer_nnx"] < NNX_VS_LINEN * results["trainer_linen"]:
        failures.append("trainer_nnx vs trainer_linen")
    assert not failures, (failures, ratios)
