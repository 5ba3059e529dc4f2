"""Time to the first step: model init, compile and one step, from nothing built (MLP-digits)."""

import pytest

from jax_trainer import bench
from jax_trainer.config import parse


@pytest.mark.parametrize("variant", ["raw_linen", "raw_nnx", "trainer_linen", "trainer_nnx"])
def test_time_to_first_step(benchmark, variant, quick):
    config = parse(bench.MLP_DIGITS)
    seconds = benchmark.pedantic(bench.time_to_first_step, args=(config, variant), rounds=1 if quick else 3)
    benchmark.extra_info["seconds"] = seconds
    assert seconds > 0
