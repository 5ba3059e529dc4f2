"""``jax-trainer bench``: the trainer's step loop against hand-written ``jax.jit`` loops.

Every variant trains the config's model with the same optax chain on the same shuffled batches; only the loop
differs (see loops.py). ``raw_linen_dispatch16``, a hand-written ``lax.scan`` over runs of 16 batches, is the
ceiling for the trainer's ``steps_per_dispatch`` on the machine at hand. The trainer runs as configured (logging,
progress bar) but without callbacks and validation, which cost the same in any loop.

Variants run in interleaved rounds of whole epochs after one warm-up epoch (the compile), so that noise from the
machine hits them alike; a variant's steps/s is the median over rounds, and its ratio to ``raw_linen`` the
median of the per-round ratios.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import jax

from jax_trainer.bench.first_step import process_first_step, process_first_steps
from jax_trainer.bench.loops import RawLoop, TrainerLoop
from jax_trainer.config import Config, ConfigError, load_config, parse
from jax_trainer.cpu_threads import cpu_thread_limit
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.trainer.tasks import ImgClassifierTrainerConfig

DISPATCH = 16
STEPS, ROUNDS = 8000, 16  # timed steps per variant, interleaved rounds: the budget whose ratios hold run to run
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
REFERENCE = "raw_linen"
VARIANTS = ("raw_linen", "raw_nnx", "trainer_linen", "trainer_nnx")
VARIANTS += (f"raw_linen_dispatch{DISPATCH}", f"trainer_linen_dispatch{DISPATCH}", f"trainer_nnx_dispatch{DISPATCH}")
# MLP 64→256→256→10 on scikit-learn's digits, batch 64, AdamW: the workload of the README's table.
MLP_DIGITS = {
    "seed": 42,
    "trainer": {"class_name": "ImgClassifierTrainer", "enable_progress_bar": True, "logger": {"log_steps_every": 50}},
    "model": {"class_name": "MLPClassifier", "hidden_dims": [256, 256], "num_classes": 10},
    "optimizer": {"class_name": "AdamW", "learning_rate": 1.0e-3},
    "dataset": {"class_name": "DigitsDataset", "global_batch_size": 64, "val_size": 0.15, "split_seed": 0},
}
CNN_DIGITS = {
    **MLP_DIGITS,
    "model": {"class_name": "CNNClassifier", "channels": [16, 32], "num_classes": 10, "dropout": 0.1},
}


def bench_config(path: str | None = None, overrides: tuple[str, ...] = ()) -> Config:
    """The config to benchmark: a YAML file, or MLP-digits; it must be a classification config."""
    config = load_config(path, overrides) if path else parse(MLP_DIGITS)
    if not isinstance(config.trainer, ImgClassifierTrainerConfig) or config.dataset is None:
        raise ConfigError(
            "bench: the config must use an ImgClassifierTrainer and a dataset (the hand-written loops "
            "train a classifier with cross-entropy on the dataset's train split)."
        )
    return config


def make_loop(config: Config, variant: str, total_epochs: int):
    """The loop of ``variant``, built and ready to run ``total_epochs`` epochs: ``raw_<mode>`` or
    ``trainer_<mode>`` with optional ``_dispatch<K>``, ``_ckpt-async``/``_ckpt-sync`` (see ``TrainerLoop``) and
    ``_bf16-mixed``/``_bf16-true`` (``trainer.precision``)."""
    kind, mode, *options = variant.split("_")
    dispatch = next((int(o.removeprefix("dispatch")) for o in options if o.startswith("dispatch")), 1)
    if kind == "raw":
        return RawLoop(config, mode, total_epochs * steps_per_epoch(config), dispatch)
    checkpoint = next((o.removeprefix("ckpt-") for o in options if o.startswith("ckpt-")), None)
    precision = next((o for o in options if o.startswith("bf16-")), config.trainer.precision)
    return TrainerLoop(config, mode, dispatch, total_epochs, checkpoint, precision)


def checkpoint_cost(config: Config, mode: str = "linen", steps: int = 500, rounds: int = 3) -> dict[str, float]:
    """Milliseconds a checkpoint every epoch adds to an epoch, with orbax's async save and waiting for it."""
    base = f"trainer_{mode}"
    results = compare(config, steps, rounds, variants=(base, f"{base}_ckpt-async", f"{base}_ckpt-sync"))
    epoch_ms = {v: 1000 * steps_per_epoch(config) / results[v] for v in results if v.startswith(base)}
    return {f"{kind}_ms_per_epoch": epoch_ms[f"{base}_ckpt-{kind}"] - epoch_ms[base] for kind in ("async", "sync")}


def compare(
    config: Config, steps: int = 4000, rounds: int = 8, variants: tuple[str, ...] = VARIANTS, quiet: bool = True
) -> dict[str, Any]:
    """Steps/s of each variant after a warm-up epoch: at least ``steps`` timed steps in ``rounds`` rounds.

    Returns ``{variant: steps_per_sec, ..., "ratios": {variant: median per-round ratio to raw_linen},
    "vs_hand_written": {trainer variant: the same against its ``hand_written`` loop},
    "first_epoch_s": {variant: seconds of the warm-up epoch, compile included}}``.
    """
    epochs_per_round = max(1, math.ceil(steps / rounds / steps_per_epoch(config)))
    total_epochs = 1 + rounds * epochs_per_round
    loops: dict[str, Any] = {}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    first: dict[str, float] = {}
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stderr(sink if quiet else sys.stderr):
        try:  # (the trainers' progress bars draw to stderr; their log lines go to the console's handler)
            if quiet:  # the console's handlers only: the trainers still write their train.log as configured
                for handler in logging.getLogger().handlers:
                    handler.addFilter(_drop_trainer_info)
            for variant in variants:
                start = time.perf_counter()
                loops[variant] = make_loop(config, variant, total_epochs)
                loops[variant].run_epochs(1)
                first[variant] = time.perf_counter() - start
            for _ in range(rounds):
                for variant in variants:
                    n, seconds = loops[variant].run_epochs(epochs_per_round)
                    rates[variant].append(n / seconds)
        finally:
            for loop in loops.values():
                loop.close()
            for handler in logging.getLogger().handlers:
                handler.removeFilter(_drop_trainer_info)
    results: dict[str, Any] = {v: statistics.median(r) for v, r in rates.items()}
    if REFERENCE in rates:
        results["ratios"] = {v: statistics.median(a / b for a, b in zip(r, rates[REFERENCE])) for v, r in rates.items()}
    results["vs_hand_written"] = {
        v: statistics.median(a / b for a, b in zip(r, rates[hand_written(v)]))
        for v, r in rates.items()
        if v.startswith("trainer") and hand_written(v) in rates
    }
    results["first_epoch_s"] = first
    return results


def _drop_trainer_info(record: logging.LogRecord) -> bool:
    """Console filter while the bench runs: the trainers' per-epoch INFO lines would bury the table."""
    return not (record.name.startswith("jax_trainer") and record.levelno <= logging.INFO)


def hand_written(variant: str) -> str:
    """The hand-written loop a trainer variant is measured against: linen, the same steps per dispatch."""
    dispatch = [o for o in variant.split("_")[2:] if o.startswith("dispatch")]
    return "_".join(["raw", "linen", *dispatch])


def steps_per_epoch(config: Config) -> int:
    return len(config.dataset.instantiate(DatasetInterface).build().train)


@contextlib.contextmanager
def count_compilations():
    """Backend compilations inside the block, counted by function name (``"jit(train_step)"``)."""
    counts: collections.Counter = collections.Counter()

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            counts[kwargs.get("fun_name", "?")] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def time_to_first_step(config: Config, variant: str, done=None) -> float:
    """Seconds from nothing built to the first finished step (model init, compile, one step); ``done()`` is called
    then, before the loop is torn down."""
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, max_steps=1))
    start = time.perf_counter()
    loop = make_loop(config, variant, total_epochs=1)
    try:
        if isinstance(loop, RawLoop):
            loop.state, _ = loop.step(loop.state, next(iter(loop.loader)))
            jax.block_until_ready(loop.state)
        else:
            loop.run_epochs(1)
        seconds = time.perf_counter() - start
        if done is not None:
            done()
    finally:
        loop.close()
    return seconds


def machine_info() -> dict[str, Any]:
    import flax

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "xla_cpu_threads": cpu_thread_limit() or "one per core",
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
    }


def peak_host_memory_mib() -> float:
    """Peak resident memory of this process: Linux's VmHWM (getrusage's ru_maxrss survives exec, so a child would
    report its parent's peak), else ru_maxrss (bytes on macOS)."""
    with contextlib.suppress(OSError, StopIteration), open("/proc/self/status", encoding="utf-8") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if platform.system() == "Darwin" else 1024)


def format_table(results: dict[str, Any], describe: str) -> str:
    ratios, own = results.get("ratios", {}), results.get("vs_hand_written", {})
    first = results.get("process_first_step_s", {})
    header = f"{'variant':<28}{'steps/s':>10}{'× ' + REFERENCE:>14}{'× hand-written':>16}{'warm-up epoch s':>18}"
    header += f"{'start→1st step s':>18}" if first else ""
    lines = [describe, header]
    for variant in VARIANTS:
        if variant in results:
            ratio = f"{ratios[variant]:.2f}" if variant in ratios else "-"
            versus = f"{own[variant]:.2f}" if variant in own else "-"
            warm = results["first_epoch_s"].get(variant, float("nan"))
            line = f"{variant:<28}{results[variant]:>10.0f}{ratio:>14}{versus:>16}{warm:>18.2f}"
            if first:
                line += f"{first[variant]:>18.2f}" if variant in first else f"{'-':>18}"
            lines.append(line)
    lines.append("× hand-written: against raw_linen with the same steps per dispatch")
    if first:
        lines.append("start→1st step: a fresh process from its start to its first finished step (imports, data, init, compile)")
    return "\n".join(lines)


def describe(config: Config, steps: int, rounds: int) -> str:
    return (
        f"{config.model.class_name} on {config.dataset.class_name}, batch {config.dataset.global_batch_size}, "
        f"{steps_per_epoch(config)} steps/epoch, {config.optimizer.class_name}; >= {steps} timed steps per variant in "
        f"{rounds} interleaved rounds (medians), warm-up epoch excluded"
    )


def run_cli(
    config_path: str | None,
    overrides=(),
    steps: int = STEPS,
    rounds: int = ROUNDS,
    json_path: str | None = None,
    first_step_rounds: int = 1,
) -> dict[str, Any]:
    """``jax-trainer bench``: print the table; ``json_path`` also gets steps/s per variant and the machine.
    ``first_step_rounds`` fresh processes per variant measure process start to first step (0: not measured)."""
    if steps < 1 or rounds < 1 or first_step_rounds < 0:
        raise ValueError(
            f"bench: --steps and --rounds must be >= 1 and --first-step-rounds >= 0, got {steps}, {rounds} and "
            f"{first_step_rounds}."
        )
    config = bench_config(config_path, tuple(overrides))
    results = compare(config, steps=steps, rounds=rounds)
    if first_step_rounds:
        first = process_first_steps(config_path, overrides, first_step_rounds, cpu_thread_limit())
        results["process_first_step_s"] = first
    info = machine_info()
    print(format_table(results, describe(config, steps, rounds)))
    print(
        f"machine: {info['cpu']}, {info['cores']} cores (XLA CPU threads: {info['xla_cpu_threads']}), "
        f"jax {info['jax']}, flax {info['flax']}; "
        f"peak host memory {peak_host_memory_mib():.0f} MiB"
    )
    if json_path:
        payload = {v: results[v] for v in VARIANTS if v in results}
        if "process_first_step_s" in results:
            payload["process_first_step_s"] = results["process_first_step_s"]
        payload["machine"] = info
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    return results
