"""``jax-trainer bench``: the trainer's step loop against hand-written ``jax.jit`` loops.

Every variant trains the config's model with the same optax chain on the same shuffled batches; only the loop
differs. The hand-written loops are what a careful user writes: one jitted step with donated state, numpy
batches passed straight to it, the loss fetched every ``log_steps_every`` steps. The trainer runs as configured
(logging, progress bar) but without callbacks and validation, which cost the same in any loop.

Variants run in interleaved rounds of whole epochs after one warm-up epoch (the compile), so that noise from the
machine hits them alike; a variant's steps/s is the median over rounds, and its ratio to ``raw_linen`` the
median of the per-round ratios.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import queue
import resource
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import jax
import optax

from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.config import Config, load_config, parse
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.optimizer import build_optimizer
from jax_trainer.trainer import checkpointing
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.trainer.tasks import ImgClassifierTrainerConfig

DISPATCH = 16
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
REFERENCE = "raw_linen"
VARIANTS = ("raw_linen", "raw_nnx", "trainer_linen", "trainer_nnx")
VARIANTS += (f"trainer_linen_dispatch{DISPATCH}", f"trainer_nnx_dispatch{DISPATCH}")
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
        raise ValueError(
            "bench: the config must use an ImgClassifierTrainer and a dataset (the hand-written loops "
            "train a classifier with cross-entropy on the dataset's train split)."
        )
    return config


# ----------------------------------------------------------------------------------------- hand-written loops
def _classification(logits, labels):
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, {"loss": loss, "acc": (logits.argmax(-1) == labels).mean()}


def _linen_step(config: Config, tx, exmp):
    """(state, jitted step) of a plain linen loop: params, mutable collections, optimizer state, rng."""
    from jax_trainer.zoo.base import BaseModelLinen

    model = config.model.instantiate(BaseModelLinen)
    init_rng, dropout_rng, rng = jax.random.split(jax.random.PRNGKey(config.trainer.seed), 3)
    variables = dict(model.init({"params": init_rng, "dropout": dropout_rng}, exmp.input, train=False))
    params = variables.pop("params")
    mutable = list(variables) or False  # e.g. ["batch_stats"]

    def loss_fn(params, variables, batch, step_rng):
        out = model.apply(
            {"params": params, **variables}, batch.input, train=True, rngs={"dropout": step_rng}, mutable=mutable
        )
        logits, new_variables = out if mutable else (out, {})
        loss, metrics = _classification(logits, batch.target)
        return loss, (new_variables, metrics)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        params, variables, opt_state, rng = state
        rng, step_rng = jax.random.split(rng)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (variables, metrics)), grads = grad_fn(params, variables, batch, step_rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), variables, opt_state, rng), metrics

    return (params, variables, tx.init(params), rng), step


def _nnx_step(config: Config, tx, exmp):
    """(state, jitted step) of a plain nnx loop: split once, merge inside ``jax.jit`` (no ``nnx.jit``)."""
    from flax import nnx

    from jax_trainer.zoo.base import BaseModelNNX

    model = config.model.instantiate(BaseModelNNX, rngs=nnx.Rngs(config.trainer.seed), exmp_input=exmp.input)
    model.train()
    graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        model, optimizer = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(lambda m: _classification(m(batch.input), batch.target), has_aux=True)
        (_, metrics), grads = grad_fn(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), metrics

    return state, step


class RawLoop:
    """A hand-written loop: ``for batch in loader: state, metrics = step(state, batch)``."""

    def __init__(self, config: Config, mode: str, total_steps: int):
        self.loader = config.dataset.instantiate(DatasetInterface).build().train
        self.log_every = config.trainer.logger.log_steps_every
        tx = build_optimizer(config.optimizer, total_steps).tx
        make = _linen_step if mode == "linen" else _nnx_step
        self.state, self.step = make(config, tx, next(iter(self.loader)))
        self.epoch = self.steps = 0

    def run_epochs(self, n: int) -> tuple[int, float]:
        """Train ``n`` epochs; returns (steps, seconds) with the device work finished."""
        start, first = time.perf_counter(), self.steps
        for _ in range(n):
            self.epoch += 1
            self.loader.set_epoch(self.epoch)
            for batch in self.loader:
                self.state, metrics = self.step(self.state, batch)
                self.steps += 1
                if self.steps % self.log_every == 0:
                    float(metrics["loss"])
        jax.block_until_ready(self.state)
        return self.steps - first, time.perf_counter() - start

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------- the trainer
class _Pacer(Callback):
    """Holds the training thread at epoch starts until the bench asks for more epochs; times each request."""

    def __init__(self, trainer):
        super().__init__(CallbackConfig(), trainer)
        self.requests: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self._left, self._start = 0, None

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        if self._left:
            self._left -= 1
            return
        self._report()
        n = self.requests.get()
        if n is None:
            raise _Stop()
        self._left, self._start = n - 1, (self.trainer.global_step, time.perf_counter())

    def on_training_end(self) -> None:
        self._report()

    def _report(self) -> None:
        if self._start is not None:
            jax.block_until_ready(self.trainer.state)
            step, start = self._start
            self.results.put((self.trainer.global_step - step, time.perf_counter() - start))
            self._start = None


class _Stop(Exception):
    """Ends a paced training run early (the bench was interrupted)."""


class _WaitForSaves(Callback):
    """Makes checkpointing synchronous: each epoch waits until the previous epoch's save is on disk."""

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        checkpointing.checkpoint_store(self.trainer).wait()


class TrainerLoop:
    """``train_model`` on a thread, advanced a requested number of epochs at a time by a pacing callback.

    ``checkpoint``: None, or "async"/"sync" to save a checkpoint (``ModelCheckpoint``, ``save_last``) every epoch.
    """

    def __init__(self, config: Config, mode: str, dispatch: int, total_epochs: int, checkpoint: str | None = None):
        self._tmp = tempfile.TemporaryDirectory(prefix="jax_trainer_bench_")
        logger = dataclasses.replace(config.trainer.logger, log_dir=self._tmp.name)
        callbacks = {"ModelCheckpoint": ModelCheckpointConfig(save_last=True)} if checkpoint else {}
        trainer_config = dataclasses.replace(
            config.trainer, model_mode=mode, steps_per_dispatch=dispatch, callbacks=callbacks, logger=logger
        )
        loader = config.dataset.instantiate(DatasetInterface).build().train
        exmp = next(iter(loader))
        self.trainer = trainer_config.instantiate(
            TrainerInterface, model_config=config.model, optimizer_config=config.optimizer, exmp_input=exmp
        )
        if checkpoint == "sync":
            self.trainer.callbacks.append(_WaitForSaves(CallbackConfig(), self.trainer))
        self._pacer = _Pacer(self.trainer)
        self.trainer.callbacks.append(self._pacer)
        self._thread = threading.Thread(target=self._train, args=(loader, total_epochs), daemon=True)
        self._thread.start()

    def _train(self, loader, epochs: int) -> None:
        try:
            self.trainer.train_model(loader, num_epochs=epochs)
        except _Stop:
            pass
        except BaseException as err:  # handed to the waiting bench thread, which re-raises it
            self._pacer.results.put(err)

    def run_epochs(self, n: int) -> tuple[int, float]:
        self._pacer.requests.put(n)
        result = self._pacer.results.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        if self._thread.is_alive():
            self._pacer.requests.put(None)
            self._thread.join()
        self._tmp.cleanup()


# ----------------------------------------------------------------------------------------- the comparison
def make_loop(config: Config, variant: str, total_epochs: int):
    """The loop of ``variant``, built and ready to run ``total_epochs`` epochs: ``raw_<mode>`` or
    ``trainer_<mode>`` with optional ``_dispatch<K>`` and ``_ckpt-async``/``_ckpt-sync`` (see ``TrainerLoop``)."""
    kind, mode, *options = variant.split("_")
    if kind == "raw":
        return RawLoop(config, mode, total_epochs * steps_per_epoch(config))
    dispatch = next((int(o.removeprefix("dispatch")) for o in options if o.startswith("dispatch")), 1)
    checkpoint = next((o.removeprefix("ckpt-") for o in options if o.startswith("ckpt-")), None)
    return TrainerLoop(config, mode, dispatch, total_epochs, checkpoint)


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
    "first_epoch_s": {variant: seconds of the warm-up epoch, compile included}}``.
    """
    epochs_per_round = max(1, math.ceil(steps / rounds / steps_per_epoch(config)))
    total_epochs = 1 + rounds * epochs_per_round
    loops: dict[str, Any] = {}
    rates: dict[str, list[float]] = {v: [] for v in variants}
    first: dict[str, float] = {}
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stderr(sink if quiet else sys.stderr):
        try:  # (the trainers' progress bars draw to stderr)
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
    results: dict[str, Any] = {v: statistics.median(r) for v, r in rates.items()}
    if REFERENCE in rates:
        results["ratios"] = {v: statistics.median(a / b for a, b in zip(r, rates[REFERENCE])) for v, r in rates.items()}
    results["first_epoch_s"] = first
    return results


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


def time_to_first_step(config: Config, variant: str) -> float:
    """Seconds from nothing built to the first finished step (model init, compile, one step)."""
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, max_steps=1))
    start = time.perf_counter()
    loop = make_loop(config, variant, total_epochs=1)
    try:
        if isinstance(loop, RawLoop):
            loop.state, _ = loop.step(loop.state, next(iter(loop.loader)))
            jax.block_until_ready(loop.state)
        else:
            loop.run_epochs(1)
    finally:
        loop.close()
    return time.perf_counter() - start


def machine_info() -> dict[str, Any]:
    import flax

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
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
    ratios = results.get("ratios", {})
    lines = [describe, f"{'variant':<28}{'steps/s':>10}{'× ' + REFERENCE:>14}{'warm-up epoch s':>18}"]
    for variant in VARIANTS:
        if variant in results:
            ratio = f"{ratios[variant]:.2f}" if variant in ratios else "-"
            warm = results["first_epoch_s"].get(variant, float("nan"))
            lines.append(f"{variant:<28}{results[variant]:>10.0f}{ratio:>14}{warm:>18.2f}")
    return "\n".join(lines)


def describe(config: Config, steps: int, rounds: int) -> str:
    return (
        f"{config.model.class_name} on {config.dataset.class_name}, batch {config.dataset.global_batch_size}, "
        f"{steps_per_epoch(config)} steps/epoch, {config.optimizer.class_name}; >= {steps} timed steps per variant in "
        f"{rounds} interleaved rounds (medians), warm-up epoch excluded"
    )


def run_cli(
    config_path: str | None, overrides=(), steps: int = 4000, rounds: int = 8, json_path: str | None = None
) -> dict[str, Any]:
    """``jax-trainer bench``: print the table; ``json_path`` also gets steps/s per variant and the machine."""
    if steps < 1 or rounds < 1:
        raise ValueError(f"bench: --steps and --rounds must be >= 1, got {steps} and {rounds}.")
    config = bench_config(config_path, tuple(overrides))
    results = compare(config, steps=steps, rounds=rounds)
    info = machine_info()
    print(format_table(results, describe(config, steps, rounds)))
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, jax {info['jax']}, flax {info['flax']}; "
        f"peak host memory {peak_host_memory_mib():.0f} MiB"
    )
    if json_path:
        payload = {v: results[v] for v in VARIANTS if v in results}
        payload["machine"] = info
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
    return results
