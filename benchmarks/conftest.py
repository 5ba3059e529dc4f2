"""Benchmark settings.

``pytest benchmarks`` measures and checks the bars of the README's benchmark section. With
``--benchmark-disable`` (how CI runs the suite) or ``JAX_TRAINER_BENCH_QUICK=1`` every benchmark runs once on a
few steps, so the suite cannot rot, and no bar is checked: a few steps measure nothing.
"""

import os

import pytest


@pytest.fixture(scope="session")
def quick(request) -> bool:
    disabled = request.config.getoption("benchmark_disable", default=False)
    return bool(disabled) or os.environ.get("JAX_TRAINER_BENCH_QUICK") == "1"


@pytest.fixture(scope="session")
def budget(quick) -> tuple[int, int]:
    """(timed steps per variant, interleaved rounds) for ``jax_trainer.bench.compare``."""
    return (4, 1) if quick else (3000, 7)
