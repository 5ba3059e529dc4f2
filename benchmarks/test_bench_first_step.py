"""Time to the first step: model init, compile and one step, from nothing built (MLP-digits), the four loops
interleaved in rounds; the bar: trainer_linen within 1.2 x the hand-written linen loop (medians of 3)."""

import statistics

from jax_trainer import bench
from jax_trainer.config import parse

VARIANTS = ("raw_linen", "raw_nnx", "trainer_linen", "trainer_nnx")
FIRST_STEP_VS_RAW = 1.2  # trainer_linen's first step / the hand-written linen loop's


def test_time_to_first_step(benchmark, quick):
    config = parse(bench.MLP_DIGITS)
    rounds = 1 if quick else 3

    def measure() -> dict[str, float]:
        times = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                times[variant].append(bench.time_to_first_step(config, variant))
        return {v: statistics.median(t) for v, t in times.items()}

    seconds = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(seconds)
    print(f"\ntime to the first step (s, median of {rounds}): {seconds}")
    assert all(s > 0 for s in seconds.values())
    if not quick:
        ratio = seconds["trainer_linen"] / seconds["raw_linen"]
        assert ratio <= FIRST_STEP_VS_RAW, (ratio, seconds)
