"""Seconds from process start to the first finished step, per loop: what a user waits for before training starts.

Each measurement is a fresh ``python -m jax_trainer.bench.first_step VARIANT [CONFIG] [overrides]`` process: the
parent notes the time before it spawns the child; the child imports jax_trainer, builds the loop (data, model init,
optimizer; the trainer also its logger), runs one step to completion (the trainer: ``train_model`` with
``max_steps: 1``, compile included) and prints the wall-clock time then, before anything is torn down. Imports,
interpreter start and jax's backend start are part of it, as they are for the user.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

FIRST_STEP_VARIANTS = ("raw_linen", "raw_nnx", "trainer_linen", "trainer_nnx")
_MARK = "first-step-done-at "


def process_first_step(config_path: str | None, overrides=(), variant: str = "trainer_linen", cpu_threads=None) -> float:
    """Seconds from spawning a process to its first finished step of ``variant``."""
    command = [sys.executable, "-m", "jax_trainer.bench.first_step", variant, json.dumps([config_path, list(overrides)])]
    if cpu_threads:
        command.append(str(cpu_threads))
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    marks = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not marks:
        raise RuntimeError(f"bench: the first-step process of {variant} failed:\n{done.stderr[-2000:]}")
    return float(marks[-1].removeprefix(_MARK)) - start


def process_first_steps(config_path, overrides=(), rounds: int = 1, cpu_threads=None) -> dict[str, float]:
    """Median over ``rounds`` fresh processes of :func:`process_first_step`, per variant of
    :data:`FIRST_STEP_VARIANTS` (the rounds interleave the variants)."""
    times: dict[str, list[float]] = {v: [] for v in FIRST_STEP_VARIANTS}
    for _ in range(rounds):
        for variant in FIRST_STEP_VARIANTS:
            times[variant].append(process_first_step(config_path, overrides, variant, cpu_threads))
    return {v: statistics.median(t) for v, t in times.items() if t}


def _child(variant: str, config_arg: str, cpu_threads: str | None = None) -> None:
    if cpu_threads:
        from jax_trainer.cpu_threads import limit_cpu_threads  # pylint: disable=import-outside-toplevel

        limit_cpu_threads(int(cpu_threads))
    from jax_trainer import bench  # pylint: disable=import-outside-toplevel  (the imports are part of the time)

    config_path, overrides = json.loads(config_arg)
    config = bench.bench_config(config_path, tuple(overrides))
    bench.time_to_first_step(config, variant, done=lambda: print(f"{_MARK}{time.time()!r}", flush=True))


if __name__ == "__main__":
    _child(*sys.argv[1:])
