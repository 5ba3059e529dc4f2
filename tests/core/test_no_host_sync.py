"""The train loop reads nothing from the device between log points: metrics stay on device until a fetch.

On CPU, ``jax.transfer_guard_device_to_host`` does not fire (host and device memory are the same), so every
read of a ``jax.Array`` is spied on instead: ``ArrayImpl._value`` is what ``float()``, ``int()``, ``bool()``,
``print`` and ``jax.device_get`` go through, and ``jax.block_until_ready`` is a sync without a transfer. The
guard is set as well, so on an accelerator implicit transfers (``np.asarray``) fail too.
"""

import json
import time

import jax
import jax.numpy as jnp
import pytest
from jax._src.array import ArrayImpl

from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.logger.logger import Logger
from jax_trainer.trainer import pacing
from logging_scenarios import AllModesTrainer, all_modes_trainer, make_batches

BATCHES = 7
LOG_EVERY = 3


class HostReads:
    """(global step, kind) of every device read while ``active``; reads inside ``jax.device_get`` count once."""

    def __init__(self):
        self.trainer, self.active, self.inside_get, self.events = None, False, 0, []
        self.inside_logger, self.loop_events = 0, []  # reads by the loop itself, not by the logger's deferred writes

    def record(self, kind: str) -> None:
        if self.active and not (kind == "read" and self.inside_get):
            self.events.append((self.trainer.global_step, kind))
            if not self.inside_logger:
                self.loop_events.append((self.trainer.global_step, kind))

    def fetch_steps(self) -> list[int]:
        return sorted({step for step, kind in self.events if kind == "device_get"})

    def strays(self) -> list:
        return [event for event in self.events if event[1] != "device_get"]


@pytest.fixture
def host_reads(monkeypatch):
    reads = HostReads()
    value, device_get, block = ArrayImpl._value, jax.device_get, jax.block_until_ready

    def spy_value(array):
        reads.record("read")
        return value.fget(array)

    def spy_device_get(tree):
        reads.record("device_get")
        reads.inside_get += 1
        try:
            return device_get(tree)
        finally:
            reads.inside_get -= 1

    def spy_block(tree):
        reads.record("block_until_ready")
        return block(tree)

    monkeypatch.setattr(ArrayImpl, "_value", property(spy_value))
    monkeypatch.setattr(jax, "device_get", spy_device_get)
    monkeypatch.setattr(jax, "block_until_ready", spy_block)
    write_pending = Logger.write_pending

    def spy_write_pending(logger, *args, **kwargs):
        reads.inside_logger += 1
        try:
            return write_pending(logger, *args, **kwargs)
        finally:
            reads.inside_logger -= 1

    monkeypatch.setattr(Logger, "write_pending", spy_write_pending)
    return reads


def train_one_epoch(mode, tmp_path, reads, monkeypatch, callbacks=(), **kwargs):
    """One epoch of 7 batches with log_steps_every=3, spying on reads inside ``train_epoch`` only."""
    kwargs.setdefault("detect_nans", True)
    trainer = all_modes_trainer(mode, tmp_path, tools=[], log_steps_every=LOG_EVERY, log_grad_norm=True, **kwargs)
    for callback in callbacks:
        callback.trainer = trainer
        trainer.callbacks.append(callback)
    reads.trainer, train_epoch = trainer, trainer.train_epoch

    def spied_train_epoch(*args):
        reads.active = True
        try:
            return train_epoch(*args)
        finally:
            reads.active = False

    monkeypatch.setattr(trainer, "train_epoch", spied_train_epoch)
    with jax.transfer_guard_device_to_host("disallow"):
        trainer.train_model(make_batches([4] * BATCHES, 0))
    return trainer


@pytest.mark.parametrize("steps_per_dispatch, fetch_steps", [(1, [3, 6, 7]), (2, [4, 6, 7])])
def test_fetches_only_at_log_points_and_epoch_end(
    mode, steps_per_dispatch, fetch_steps, tmp_path, host_reads, monkeypatch
):
    trainer = train_one_epoch(mode, tmp_path, host_reads, monkeypatch, steps_per_dispatch=steps_per_dispatch)
    assert trainer.global_step == BATCHES
    assert host_reads.strays() == []
    assert host_reads.fetch_steps() == fetch_steps


class SyncEveryStep(Callback):
    """What the spy must catch: a step hook that reads a device value (``float(loss)`` in the loop)."""

    def __init__(self, read: str):
        super().__init__(CallbackConfig())
        self.read = read

    def on_train_step_end(self, step, epoch_idx):
        value = jnp.sum(jax.tree.leaves(self.trainer.state)[0])
        reader = {"float": float, "bool": bool}.get(self.read) or getattr(jax, self.read)  # looked up when patched
        reader(value)


@pytest.mark.parametrize(
    "read, kind",
    [("float", "read"), ("bool", "read"), ("device_get", "device_get"), ("block_until_ready", "block_until_ready")],
)
def test_a_read_per_step_is_caught(read, kind, tmp_path, host_reads, monkeypatch):
    train_one_epoch("nnx", tmp_path, host_reads, monkeypatch, callbacks=[SyncEveryStep(read)])
    assert {step for step, k in host_reads.events if k == kind} == set(range(1, BATCHES + 1))


class ReadsTrainLoss(Callback):
    """Reads the train epoch's loss at the epoch end, so the loop must fetch it there."""

    def __init__(self):
        super().__init__(CallbackConfig())
        self.loss = None

    def on_training_epoch_end(self, train_metrics, epoch_idx):
        self.loss = train_metrics["train/loss"]


def test_an_epoch_ends_without_waiting_for_its_metrics(mode, tmp_path, host_reads, monkeypatch):
    """Without detect_nans and without a callback that reads them, the loop never reads the epoch's metrics (nor
    a window's): the logger's deferred writes do, once the device has computed them."""
    trainer = train_one_epoch(mode, tmp_path, host_reads, monkeypatch, detect_nans=False)
    assert host_reads.loop_events == []  # the spy itself is checked by the test below and the per-step ones
    written = json.loads((trainer.log_dir / "metrics" / "train_epoch_0001.json").read_text())
    assert written["step"] == BATCHES and written["train/loss_epoch"] > 0


def test_a_callback_reading_the_train_metrics_gets_them_at_the_epoch_end(tmp_path, host_reads, monkeypatch):
    reader = ReadsTrainLoss()
    trainer = train_one_epoch("nnx", tmp_path, host_reads, monkeypatch, callbacks=[reader], detect_nans=False)
    assert {step for step, _ in host_reads.loop_events} == {BATCHES}
    written = json.loads((trainer.log_dir / "metrics" / "train_epoch_0001.json").read_text())
    assert reader.loss == written["train/loss_epoch"]


class HeavyStepTrainer(AllModesTrainer):
    """A train step with milliseconds of device work (matmuls): far more than the host's part of a step."""

    def metrics(self, batch) -> dict:
        x = jnp.full((384, 384), 1.0 / 384) + batch.input[0, 0]
        for _ in range(6):
            x = jnp.tanh(x @ x)
        return {"heavy": x.mean()}


class StepEndTimes(Callback):
    """When the host finished each step's dispatch."""

    def __init__(self):
        super().__init__(CallbackConfig())
        self.times = []

    def on_train_step_end(self, step, epoch_idx):
        self.times.append(time.perf_counter())


def test_the_host_runs_ahead_of_the_device_but_boundedly(mode, tmp_path):
    """Dispatch is asynchronous (the host gets ahead), but at most ``2 * pacing.EVERY`` dispatches are in flight:
    the runtime's own limit (32 on CPU) would let the host dispatch step 32 at once, then block on every step."""
    every, n = pacing.EVERY, 6 * pacing.EVERY
    trainer = all_modes_trainer(mode, tmp_path, tools=[], trainer_cls=HeavyStepTrainer, log_steps_every=10**6)
    step_ends = StepEndTimes()
    step_ends.trainer = trainer
    trainer.callbacks.append(step_ends)
    trainer.train_model(make_batches([4] * n, 0))
    times = [t - step_ends.times[0] for t in step_ends.times]
    device_step = (time.perf_counter() - step_ends.times[0]) / (n - 1)  # the run ends once the device is done
    assert times[every - 1] < every / 2 * device_step  # steps 2..EVERY dispatched while the device was on step 1
    ahead = 4 * every
    assert times[ahead] > (ahead - 2 * every - 2) / 2 * device_step  # dispatched once >= 2E - 1 steps were done
