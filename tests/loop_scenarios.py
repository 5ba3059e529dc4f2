"""The step loop's contracts, run by tests/linen and tests/nnx (``mode`` fixture): steps compile once, and K
steps per dispatch (a lax.scan) train exactly as K single steps."""

from __future__ import annotations

import json

import jax
import numpy as np

from jax_trainer.bench import count_compilations
from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.datasets import NumpyLoader, SupervisedBatch
from jax_trainer.trainer import ImgClassifierTrainer
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import classifier, digits_splits, fixed_batches, model_weights


class CompileSnapshots(Callback):
    """Total compilations so far, at every epoch start."""

    def __init__(self, counts):
        super().__init__(CallbackConfig())
        self.counts, self.totals = counts, []

    def on_training_epoch_start(self, epoch_idx: int) -> None:
        self.totals.append(sum(self.counts.values()))


def test_steps_compile_once(mode, tmp_path):
    """Fixed-shape data: one train and one eval compilation per run; after the first epoch (and its validation)
    nothing compiles at all, not even the small helpers (accumulator init, results)."""
    train, val = fixed_batches(6, batch_size=16), fixed_batches(3, batch_size=16)
    trainer = classifier(mode, tmp_path, train_epochs=3, log_steps_every=4)
    with count_compilations() as counts:
        snapshots = CompileSnapshots(counts)
        trainer.callbacks.append(snapshots)
        trainer.train_model(train, val, test_loader=val)
    assert counts["jit(train_step)"] == 1, counts
    assert counts["jit(eval_step)"] == 1, counts
    assert counts["jit(train_steps_scanned)"] == 0, counts
    assert snapshots.totals[1] == snapshots.totals[2] == sum(counts.values()), (snapshots.totals, counts)


class _CountingLoss(ImgClassifierTrainer):
    """Counts the traces of its loss: output_loss runs in Python only while jax traces a step."""

    traces = 0

    def output_loss(self, outputs, batch):
        type(self).traces += 1
        return super().output_loss(outputs, batch)


def test_only_the_steps_compile_and_the_loss_is_traced_once(mode, tmp_path):
    """Between a new trainer and its results nothing compiles but the train and eval steps (metric accumulators are
    made and finished on the host), and each step program traces the user's loss once: the metric specs come from
    the same trace. A first trainer warms jax's caches of the eager ops (optimizer init) that any run shares."""
    train, val = fixed_batches(4, batch_size=16), fixed_batches(2, batch_size=16)

    def run(log_dir):
        trainer = classifier(mode, log_dir, trainer_cls=_CountingLoss, train_epochs=2, log_steps_every=2)
        _CountingLoss.traces = 0
        with count_compilations() as counts:
            trainer.train_model(train)
            traces_to_train = _CountingLoss.traces
            trainer.eval_model(val, "val", 2)
        return dict(counts), traces_to_train, _CountingLoss.traces - traces_to_train

    run(tmp_path / "warm")
    counts, traces_to_train, traces_to_eval = run(tmp_path / "run")
    assert counts == {"jit(train_step)": 1, "jit(eval_step)": 1}, counts
    assert (traces_to_train, traces_to_eval) == (1, 1)


def test_dispatch_compiles_once_per_shape(mode, tmp_path):
    """K=4 over 10 batches: runs of 4, 4 and 2 per epoch, one dispatch each; each run length compiles once."""
    trainer = classifier(mode, tmp_path, train_epochs=2, steps_per_dispatch=4)
    with count_compilations() as counts:
        trainer.train_model(fixed_batches(10, batch_size=16))
    assert counts["jit(train_steps_scanned)"] == 2, counts
    assert counts["jit(train_step)"] == 0, counts
    assert trainer.global_step == 20


def test_dispatch_over_the_bundled_loader(mode, tmp_path):
    """A shuffled NumpyLoader of 19 batches, the last one short: K=16 runs 16, 2 and the short batch alone per
    epoch, each gathered at once, and trains bitwise as K=1; compiles: two run lengths and the short batch."""
    data = digits_splits().train.arrays
    data = SupervisedBatch(data.input[:300], data.target[:300])

    def run(k, log_dir):
        loader = NumpyLoader(data, 16, shuffle=True, seed=5)
        trainer = classifier(mode, log_dir, train_epochs=2, steps_per_dispatch=k)
        with count_compilations() as counts:
            trainer.train_model(loader)
        return [np.asarray(x) for x in jax.tree.leaves(trainer.backend.state_dict(trainer.state))], counts

    state_1, _ = run(1, tmp_path / "k1")
    state_16, counts = run(16, tmp_path / "k16")
    assert counts["jit(train_steps_scanned)"] == 2 and counts["jit(train_step)"] == 1, counts
    for a, b in zip(state_1, state_16, strict=True):
        np.testing.assert_array_equal(a, b)


def _train(mode, log_dir, k: int, batches):
    model = MLPClassifierConfig(hidden_dims=[32], dropout=0.2)  # dropout: the rng stream must match as well
    trainer = classifier(mode, log_dir, model=model, train_epochs=2, steps_per_dispatch=k, log_steps_every=8)
    trainer.train_model(batches)
    params = list(model_weights(trainer).values())
    state = [np.asarray(x) for x in jax.tree.leaves(trainer.backend.state_dict(trainer.state))]
    epoch_2 = json.loads((log_dir / "metrics" / "train_epoch_0002.json").read_text())
    return params, state, epoch_2


def test_dispatch_matches_single_steps(mode, tmp_path):
    """steps_per_dispatch=16 against 1 on the same 36 batches per epoch (runs of 16, 16 and 4):
    bitwise-equal parameters, optimizer state and rng, and equal epoch metrics."""
    batches = fixed_batches(36, batch_size=16)
    params_1, state_1, metrics_1 = _train(mode, tmp_path / "k1", 1, batches)
    params_16, state_16, metrics_16 = _train(mode, tmp_path / "k16", 16, batches)
    assert len(params_1) == len(params_16) > 0
    for a, b in zip(params_1, params_16):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(state_1, state_16):
        np.testing.assert_array_equal(a, b)
    for key in ("train/loss_epoch", "train/acc_epoch"):
        assert metrics_16[key] == metrics_1[key], key

