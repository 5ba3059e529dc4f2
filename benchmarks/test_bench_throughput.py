"""Steps/s of the trainer (linen, nnx, K steps per dispatch, bf16-mixed) against hand-written jax.jit loops.

The bars are the issue's, as ratios within one run. On every machine, on MLP-digits (where the loop's own cost shows
most: a small model, 18 steps per epoch): the trainer >= 0.95 x the hand-written loop for both backends, 16 steps per
dispatch >= 0.95 x the hand-written scan. On a GPU only (skipped elsewhere): 16 steps per dispatch >= 1.4 x per-step
on MLP-digits, and bf16-mixed >= 1.5 x fp32 on CNN-digits. CNN-digits is otherwise measured and reported.
"""

import jax
import pytest

from jax_trainer import bench
from jax_trainer.config import parse

WORKLOADS = {"mlp_digits": bench.MLP_DIGITS, "cnn_digits": bench.CNN_DIGITS}
TRAINER_VS_RAW = 0.95  # trainer (either backend) / hand-written linen loop
NNX_VS_LINEN = 0.95  # trainer nnx / trainer linen
DISPATCH_VS_RAW = 1.4  # GPU: trainer with 16 steps per dispatch / hand-written per-step loop
DISPATCH_VS_SCAN = 0.95  # trainer with 16 steps per dispatch / hand-written lax.scan over the same runs
BF16_VS_FP32 = 1.5  # GPU: trainer with bf16-mixed / fp32, CNN-digits
ON_GPU = jax.default_backend() == "gpu"


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
    if ON_GPU:  # on a CPU the step is compute-bound: dispatch is hidden behind it (README, Performance)
        failures += [v for v in trainer_dispatch if ratios[v] < DISPATCH_VS_RAW]
    failures += [f"{v} vs raw_linen_dispatch16" for v in trainer_dispatch if results["vs_hand_written"][v] < DISPATCH_VS_SCAN]
    if results["trainer_nnx"] < NNX_VS_LINEN * results["trainer_linen"]:
        failures.append("trainer_nnx vs trainer_linen")
    assert not failures, (failures, ratios)


@pytest.mark.skipif(not ON_GPU, reason="bf16-mixed >= 1.5 x fp32 is a GPU bar (CPUs have no fast bfloat16 matmuls)")
@pytest.mark.parametrize("mode", ["linen", "nnx"])
def test_bf16_mixed_speedup_on_gpu(benchmark, mode, budget, quick):
    steps, rounds = budget
    config = parse(bench.CNN_DIGITS)
    variants = (f"trainer_{mode}", f"trainer_{mode}_bf16-mixed")
    results = benchmark.pedantic(bench.compare, args=(config, steps, rounds, variants), rounds=1, iterations=1)
    speedup = results[variants[1]] / results[variants[0]]
    benchmark.extra_info.update({v: results[v] for v in variants}, speedup=speedup)
    print(f"\nCNN-digits {mode}: bf16-mixed {speedup:.2f} x fp32")
    if not quick:
        assert speedup >= BF16_VS_FP32, (speedup, results)
