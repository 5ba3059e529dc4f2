"""The loops ``jax-trainer bench`` compares: hand-written ``jax.jit`` loops and the trainer, driven by epochs.

The hand-written loops are what a careful user writes: one jitted step with donated state, numpy batches passed
straight to it, the loss fetched every ``log_steps_every`` steps; with several steps per dispatch, the loader's runs
of stacked batches go through one jitted ``lax.scan`` of that step. The trainer runs ``train_model`` on a thread,
held at epoch starts by a pacing callback so the bench can interleave variants.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import tempfile
import threading
import time

import jax

from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.config import Config
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.optimizer import build_optimizer
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.zoo.reference_steps import REFERENCE_STEPS


def _scanned(step):
    """Several steps in one dispatch: ``lax.scan`` of the jitted step over stacked batches."""

    @functools.partial(jax.jit, donate_argnums=0)
    def steps(state, batches):
        return jax.lax.scan(step, state, batches)

    return steps


class RawLoop:
    """A hand-written loop: ``for batch in loader: state, metrics = step(state, batch)``; with ``dispatch`` > 1
    the loader's runs of that many stacked batches go through one scanned dispatch each."""

    def __init__(self, config: Config, mode: str, total_steps: int, dispatch: int = 1):
        self.loader = config.dataset.instantiate(DatasetInterface).build().train
        self.log_every = config.trainer.logger.log_steps_every
        tx = build_optimizer(config.optimizer, total_steps).tx
        self.state, self.step = REFERENCE_STEPS[mode](config.model, config.trainer.seed, tx, next(iter(self.loader)))
        self.dispatch, self.scan = dispatch, (_scanned(self.step) if dispatch > 1 else None)
        self.epoch = self.steps = 0

    def run_epochs(self, n: int) -> tuple[int, float]:
        """Train ``n`` epochs; returns (steps, seconds) with the device work finished."""
        start, first = time.perf_counter(), self.steps
        for _ in range(n):
            self.epoch += 1
            self.loader.set_epoch(self.epoch)
            if self.dispatch == 1:
                for batch in self.loader:
                    self.state, metrics = self.step(self.state, batch)
                    self.steps += 1
                    if self.steps % self.log_every == 0:
                        float(metrics["loss"])
                continue
            for k, batches in self.loader.iter_runs(self.dispatch):
                self.state, metrics = (self.scan if k > 1 else self.step)(self.state, batches)
                self.steps += k
                if self.steps // self.log_every > (self.steps - k) // self.log_every:
                    float(metrics["loss"][-1] if k > 1 else metrics["loss"])
        jax.block_until_ready(self.state)
        return self.steps - first, time.perf_counter() - start

    def close(self) -> None:
        pass


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
        self.trainer.checkpointer.wait()


class TrainerLoop:
    """``train_model`` on a thread, advanced a requested number of epochs at a time by a pacing callback.

    ``checkpoint``: None, or "async"/"sync" to save a checkpoint (``ModelCheckpoint``, ``save_last``) every epoch;
    ``precision``: ``trainer.precision``.
    """

    def __init__(
        self,
        config: Config,
        mode: str,
        dispatch: int,
        total_epochs: int,
        checkpoint: str | None = None,
        precision: str = "fp32",
    ):
        self._tmp = tempfile.TemporaryDirectory(prefix="jax_trainer_bench_")
        logger = dataclasses.replace(config.trainer.logger, log_dir=self._tmp.name)
        callbacks = {"ModelCheckpoint": ModelCheckpointConfig(save_last=True)} if checkpoint else {}
        trainer_config = dataclasses.replace(
            config.trainer,
            model_mode=mode,
            steps_per_dispatch=dispatch,
            callbacks=callbacks,
            logger=logger,
            precision=precision,
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
