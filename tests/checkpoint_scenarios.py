"""Checkpoint behaviours every backend must show; tests/linen and tests/nnx import these tests and provide
the ``mode`` fixture.

Runs are tiny (an MLP with dropout on 360 digits, 11 steps per epoch) but exercise everything a resume
must restore: dropout rng, AdamW moments, a warmup-cosine schedule, step-log windows, EarlyStopping
counters and ModelCheckpoint's top-k bookkeeping.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from compoconf import register

from jax_trainer.callbacks import (
    Callback,
    CallbackConfig,
    EarlyStoppingConfig,
    LearningRateMonitorConfig,
    ModelCheckpointConfig,
)
from jax_trainer.datasets import DigitsConfig, DigitsDataset
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.logger.tools import CSVToolLoggerConfig
from jax_trainer.optimizer import AdamWConfig, WarmupCosineDecayScheduleConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig, TrainerModule
from jax_trainer.checkpoint import CheckpointError, committed_steps
from jax_trainer.checkpoint.reading import restore_raw
from jax_trainer.checkpoint.store import STATE
from jax_trainer.checkpoint.trees import nest
from jax_trainer.zoo.configs import MLPClassifierConfig
from logging_scenarios import read_csv

STEPS_PER_EPOCH = 11
TIMING_KEYS = ("train/epoch_time",)


class Crash(Exception):
    """Stands in for a failure in the middle of training."""


@dataclass
class CrashAtStepConfig(CallbackConfig):
    step: int = 0


@register
class CrashAtStep(Callback):
    config: CrashAtStepConfig

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        if step == self.config.step:
            raise Crash(f"crash at step {step}")


def splits():
    return DigitsDataset(DigitsConfig(global_batch_size=32, val_size=0.4, test_size=0.4)).build()


def make_trainer(mode, log_dir, data, callbacks=None, epochs=2, hidden=16, tools=None, **kwargs) -> TrainerModule:
    config = ImgClassifierTrainerConfig(
        model_mode=mode,
        train_epochs=epochs,
        enable_progress_bar=False,
        logger=LoggerConfig(log_dir=str(log_dir), log_steps_every=4, tool_config=tools),
        callbacks=callbacks or {},
        **kwargs,
    )
    schedule = WarmupCosineDecayScheduleConfig(peak_value=1e-2, warmup_steps=5)
    model = MLPClassifierConfig(hidden_dims=[hidden], dropout=0.1)
    return ImgClassifierTrainer(config, model, AdamWConfig(learning_rate=schedule), next(iter(data.train)))


def resume_callbacks(crash_step=None) -> dict:
    callbacks = {
        "ckpt": ModelCheckpointConfig(
            monitor="val/acc", mode="max", save_top_k=2, save_last=True, every_n_train_steps=8
        ),
        "stop": EarlyStoppingConfig(monitor="val/loss", mode="min", patience=5, min_delta=0.05),
    }
    if crash_step is not None:
        callbacks["crash"] = CrashAtStepConfig(step=crash_step)
    return callbacks


def host_state(trainer) -> dict:
    return jax.tree.map(np.asarray, trainer.backend.state_dict(trainer.state))


def assert_bitwise_equal(a, b):
    leaves_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
    leaves_b, tree_b = jax.tree_util.tree_flatten_with_path(b)
    assert tree_a == tree_b
    for (path, x), (_, y) in zip(leaves_a, leaves_b):
        assert x.dtype == y.dtype and np.array_equal(x, y), jax.tree_util.keystr(path)


def epoch_files(log_dir) -> dict:
    """Every metrics/<mode>_epoch_NNNN.json, timing values left out (they differ run to run)."""
    files = {}
    for path in sorted(Path(log_dir, "metrics").glob("*.json")):
        values = json.loads(path.read_text())
        files[path.name] = {k: v for k, v in values.items() if k not in TIMING_KEYS}
    return files


# Checkpoints come every 8 steps and at epoch ends (11, 22): linen crashes at step 17 and resumes inside epoch 2
# (from step 16), nnx at step 13 and resumes after epoch 1 (from step 11); tests/core/test_resume_kill.py runs both
# cases under both backends.
CRASH_STEP = {"linen": 17, "nnx": 13}


def test_resume_is_exact(mode, tmp_path):
    """A run failing at ``CRASH_STEP[mode]`` and resumed from "last" ends bitwise where the uninterrupted run
    does, with the same metrics files and callback state."""
    data = splits()
    reference = make_trainer(mode, tmp_path / "ref", data, resume_callbacks())
    ref_metrics = reference.train_model(data.train, data.val, data.test)
    crash_step = CRASH_STEP[mode]
    run_dir = tmp_path / "crashed"
    crashed = make_trainer(mode, run_dir, data, resume_callbacks(crash_step))
    with pytest.raises(Crash):
        crashed.train_model(data.train, data.val, data.test)
    last = max(committed_steps(run_dir / "checkpoints"))
    assert 0 < last < crash_step
    meta = json.loads((run_dir / "checkpoints" / str(last) / "meta" / "metadata").read_text())
    assert meta["epoch_done"] == (last % STEPS_PER_EPOCH == 0)

    resumed = make_trainer(mode, run_dir, data, resume_callbacks())
    metrics = resumed.train_model(data.train, data.val, data.test, ckpt_path="last")

    assert_bitwise_equal(host_state(resumed), host_state(reference))
    assert resumed.global_step == reference.global_step == 2 * STEPS_PER_EPOCH
    assert metrics["test"] == ref_metrics["test"]
    for epoch in range(meta["epoch"] + (1 if meta["epoch_done"] else 0), 3):
        assert metrics[epoch] == ref_metrics[epoch]
    # lr schedule position, train accumulators of the interrupted epoch, val/test metrics: all in these files
    assert epoch_files(run_dir) == epoch_files(tmp_path / "ref")
    for name in ("ckpt", "stop"):
        assert _callback(resumed, name).state_dict() == _callback(reference, name).state_dict()
    assert committed_steps(run_dir / "checkpoints") == committed_steps(tmp_path / "ref" / "checkpoints")


def test_throughput_after_a_mid_window_resume(mode, tmp_path):
    """A checkpoint inside a log window restores the window's metrics, but the window's throughput counts only
    the steps run since the resume: samples/s x step time x those steps = their examples."""
    data, csv = splits(), CSVToolLoggerConfig()
    callbacks = {"ckpt": ModelCheckpointConfig(save_last=True, every_n_train_steps=6)}
    crashed = make_trainer(mode, tmp_path, data, {**callbacks, "crash": CrashAtStepConfig(step=7)}, tools=csv)
    with pytest.raises(Crash):
        crashed.train_model(data.train)
    assert max(committed_steps(tmp_path / "checkpoints")) == 6  # inside the window of steps 5-8
    resumed = make_trainer(mode, tmp_path, data, callbacks, epochs=1, tools=csv)
    resumed.train_model(data.train, ckpt_path="last")
    rows = read_csv(tmp_path / "metrics.csv")
    batch = data.train.batch_size
    assert rows[8, "train/samples_per_sec"] * rows[8, "train/step_time"] * 2 == pytest.approx(2 * batch)


def _callback(trainer, name):
    return trainer.callbacks[list(trainer.config.callbacks).index(name)]


def _val_scores(log_dir) -> dict[int, dict]:
    scores = {}
    for path in Path(log_dir, "metrics").glob("val_epoch_*.json"):
        values = json.loads(path.read_text())
        scores[values["step"]] = values
    return scores


def _expected_top(scores: dict, key: str, mode: str, k: int) -> list[int]:
    sign = -1 if mode == "max" else 1
    return sorted(scores, key=lambda step: (sign * scores[step][key], step))[:k]


def test_top_k_and_best_model(mode, tmp_path):
    """Two ModelCheckpoints on one directory keep exactly their top k (max and min) plus the last; the best
    checkpoint reloaded reproduces its logged score."""
    data = splits()
    callbacks = {
        "best_acc": ModelCheckpointConfig(monitor="val/acc", mode="max", save_top_k=2, save_last=True),
        "best_loss": ModelCheckpointConfig(monitor="val/loss", mode="min", save_top_k=1),
    }
    trainer = make_trainer(mode, tmp_path, data, callbacks, epochs=3)
    trainer.train_model(data.train, data.val)
    scores = _val_scores(tmp_path)
    assert sorted(scores) == [STEPS_PER_EPOCH * e for e in range(1, 4)]
    best_acc, best_loss = trainer.callbacks
    top_acc = _expected_top(scores, "val/acc", "max", 2)
    top_loss = _expected_top(scores, "val/loss", "min", 1)
    assert [e["step"] for e in best_acc.best_k] == top_acc
    assert [e["step"] for e in best_loss.best_k] == top_loss
    assert best_acc.last_step == 3 * STEPS_PER_EPOCH
    assert committed_steps(tmp_path / "checkpoints") == sorted(set(top_acc + top_loss + [3 * STEPS_PER_EPOCH]))
    assert sorted(p.name for p in Path(tmp_path, "checkpoints").iterdir()) == sorted(
        str(s) for s in set(top_acc + top_loss + [3 * STEPS_PER_EPOCH])
    )  # nothing else left behind (no temporary or half-deleted directories)

    for callback, key in ((best_acc, "val/acc"), (best_loss, "val/loss")):
        assert callback.best_model_score == scores[int(Path(callback.best_model_path).name)][key]
        loaded = ImgClassifierTrainer.load_from_checkpoint(callback.best_model_path, log_dir=tmp_path / "eval")
        result = loaded.eval_model(data.val, "val", 0)
        assert abs(result[key] - callback.best_model_score) <= 1e-6
    assert not list(Path(tmp_path).rglob("*.pkl"))


def test_monitor_typo_lists_metrics(mode, tmp_path):
    data = splits()
    trainer = make_trainer(mode, tmp_path, data, {"ckpt": ModelCheckpointConfig(monitor="val/accuracy")}, epochs=1)
    with pytest.raises(ValueError, match=r"val/accuracy.*available: \['val/acc', 'val/loss'\]"):
        trainer.train_model(data.train, data.val)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's aborted read coroutines
def test_damaged_checkpoints_name_the_entry(mode, tmp_path):
    data = splits()
    callbacks = {"ckpt": ModelCheckpointConfig(save_top_k=-1, every_n_epochs=1)}
    make_trainer(mode, tmp_path / "run", data, callbacks, epochs=2).train_model(data.train)
    first, second = (tmp_path / "run" / "checkpoints" / str(s) for s in (STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH))

    wider = make_trainer(mode, tmp_path / "wide", data, hidden=24)
    entry = r"entry 'model/(params/)?(l1|head)/(kernel|bias)' is float32\[(16|\d+, 16|16, 10)\] in the checkpoint "
    entry += r"but float32\[(24|\d+, 24|24, 10)\] here"
    with pytest.raises(CheckpointError, match=rf"Checkpoint {first} does not match this model: {entry}"):
        wider.load_model_checkpoint(first)
    with pytest.raises(CheckpointError, match=rf"Checkpoint {first} does not match this model: {entry}"):
        wider.train_model(data.train, ckpt_path=first)

    largest = _largest_array_file(second)
    os.truncate(largest, largest.stat().st_size // 2)  # the file holding the (largest) kernel
    trainer = make_trainer(mode, tmp_path / "other", data)
    damaged = rf"Checkpoint {second} is damaged: cannot read entry '[\w/]+' of 'state'"
    with pytest.raises(CheckpointError, match=damaged):
        trainer.load_model_checkpoint(second)
    gc.collect()  # orbax's abandoned read coroutines report here (filtered by the mark), not in a later test

    meta = first / "meta" / "metadata"
    os.truncate(meta, meta.stat().st_size // 2)
    with pytest.raises(CheckpointError, match=rf"Checkpoint {first} is damaged: cannot read its metadata \('meta'\)"):
        trainer.load_model_checkpoint(first)


def test_weights_only_checkpoints(mode, tmp_path):
    """``save_optimizer_state: false`` checkpoints load for evaluation but refuse to resume training."""
    data = splits()
    callbacks = {"ckpt": ModelCheckpointConfig(save_optimizer_state=False)}
    trainer = make_trainer(mode, tmp_path, data, callbacks, epochs=1)
    val = trainer.train_model(data.train, data.val)[1]
    path = tmp_path / "checkpoints" / str(STEPS_PER_EPOCH)
    fresh = make_trainer(mode, tmp_path / "fresh", data)
    fresh.load_model_checkpoint(path)
    assert fresh.eval_model(data.val, "val", 1) == val
    with pytest.raises(CheckpointError, match="weights only"):
        make_trainer(mode, tmp_path / "fresh2", data).train_model(data.train, ckpt_path=path)


def _largest_array_file(checkpoint: Path) -> Path:
    """The largest file holding array data (the ocdbt data files, not the JSON metadata) of a checkpoint's state."""
    files = [p for p in (checkpoint / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return max(files, key=lambda p: p.stat().st_size)


def _state_arrays(trainer) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(trainer.backend.state_dict(trainer.state))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's aborted read coroutines
def test_altered_values_are_caught_and_last_falls_back_to_an_intact_checkpoint(mode, tmp_path, caplog):
    """A checkpoint whose array files were rewritten with one value altered reads back cleanly; only the checksums
    recorded at save time catch it: the checkpoint is named damaged, and ``last`` resumes from the newest intact one
    (the damaged one is moved aside, not lost)."""
    data = splits()
    callbacks = {"ckpt": ModelCheckpointConfig(save_top_k=-1, every_n_epochs=1)}
    reference = make_trainer(mode, tmp_path / "run", data, callbacks, epochs=2)
    reference.train_model(data.train)
    newest = tmp_path / "run" / "checkpoints" / str(2 * STEPS_PER_EPOCH)
    stored = restore_raw(newest, STATE)
    name = max(stored, key=lambda key: stored[key].size)
    stored[name] = np.array(stored[name])
    stored[name].reshape(-1)[7] += 1.0  # one value altered; the files are rewritten whole and read back cleanly
    rewriter = ocp.StandardCheckpointer()
    rewriter.save(tmp_path / "state_rewritten", nest(stored))
    rewriter.wait_until_finished()
    shutil.rmtree(newest / "state")
    (tmp_path / "state_rewritten").rename(newest / "state")
    entry = "/".join(name)
    with pytest.raises(CheckpointError, match=rf"Checkpoint {newest} is damaged: entry '{entry}' of 'state' differs"):
        make_trainer(mode, tmp_path / "eval", data).load_model_checkpoint(newest)
    resumed = make_trainer(mode, tmp_path / "run", data, callbacks, epochs=2)
    with caplog.at_level("WARNING", logger="jax_trainer"):
        resumed.train_model(data.train, ckpt_path="last")
    assert f"Checkpoint {newest} is damaged" in caplog.text and "Falling back" in caplog.text
    assert (tmp_path / "run" / "abandoned" / newest.name).is_dir()  # kept, inside the run
    expected, got = _state_arrays(reference), _state_arrays(resumed)
    for key, value in expected.items():
        assert np.array_equal(value, got[key]), key  # the epoch was trained again from the intact checkpoint


def test_checkpoint_metadata_never_names_a_path(mode, tmp_path):
    """A crafted ModelCheckpoint state naming a folder outside the run: resuming neither renames nor deletes it."""
    data = splits()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    callbacks = {"ckpt": ModelCheckpointConfig(save_top_k=1, monitor="val/acc", mode="max", save_last=True)}
    make_trainer(mode, tmp_path / "run", data, callbacks, epochs=1).train_model(data.train, data.val)
    meta_file = tmp_path / "run" / "checkpoints" / str(STEPS_PER_EPOCH) / "meta" / "metadata"
    meta = json.loads(meta_file.read_text())
    state = meta["callbacks"]["ckpt"]
    state["last_step"] = str(victim)
    state["best_k"] = [{"step": str(victim), "epoch": 1, "score": 1.0}, *state["best_k"]]
    meta["best_step"] = str(victim)
    meta_file.write_text(json.dumps(meta))
    make_trainer(mode, tmp_path / "run", data, callbacks, epochs=3).train_model(data.train, data.val, ckpt_path="last")
    assert (victim / "keep.txt").read_text() == "mine"


def test_resuming_from_an_older_checkpoint_keeps_the_newer_ones(mode, tmp_path, caplog):
    data = splits()
    callbacks = {"ckpt": ModelCheckpointConfig(save_top_k=-1, every_n_epochs=1)}
    make_trainer(mode, tmp_path / "run", data, callbacks, epochs=3).train_model(data.train)
    older = tmp_path / "run" / "checkpoints" / str(STEPS_PER_EPOCH)
    with caplog.at_level("WARNING", logger="jax_trainer"):
        make_trainer(mode, tmp_path / "run", data, callbacks, epochs=2).train_model(data.train, ckpt_path=older)
    moved = sorted(p.name for p in (tmp_path / "run" / "abandoned").iterdir())
    assert moved == [str(2 * STEPS_PER_EPOCH), str(3 * STEPS_PER_EPOCH)] and "moved to" in caplog.text


def test_a_missing_array_metadata_file_is_named_as_damage(mode, tmp_path):
    data = splits()
    callbacks = {"ckpt": ModelCheckpointConfig(save_top_k=-1, every_n_epochs=1)}
    make_trainer(mode, tmp_path / "run", data, callbacks, epochs=1).train_model(data.train)
    checkpoint = tmp_path / "run" / "checkpoints" / str(STEPS_PER_EPOCH)
    (checkpoint / "state" / "_METADATA").unlink()
    with pytest.raises(CheckpointError, match=r"is damaged: .*state/_METADATA\) may be missing or damaged"):
        make_trainer(mode, tmp_path / "eval", data).load_model_checkpoint(checkpoint)


def _lr_points(log_dir) -> list[tuple[int, float]]:
    """Every (step, value) row of LearningRateMonitor's series in metrics.csv, in file order, duplicates kept."""
    with open(Path(log_dir, "metrics.csv"), newline="", encoding="utf-8") as handle:
        return [(int(r["step"]), float(r["value"])) for r in csv.DictReader(handle) if r["key"] == "optimizer/lr-AdamW"]


@pytest.mark.parametrize("every_n_train_steps,crash_step", [(None, 13), (8, 17)], ids=["epoch_end", "mid_epoch"])
def test_lr_monitor_series_is_unchanged_by_a_resume(mode, tmp_path, every_n_train_steps, crash_step):
    """LearningRateMonitor logs the starting rate once per run, not again at the step a resumed run starts from:
    resumed after epoch 1 (step 11) or inside epoch 2 (step 16), the lr points equal the uninterrupted run's."""
    data, csv_tool = splits(), CSVToolLoggerConfig()
    callbacks = {
        "ckpt": ModelCheckpointConfig(save_last=True, every_n_epochs=1, every_n_train_steps=every_n_train_steps),
        "lr": LearningRateMonitorConfig(),
    }
    make_trainer(mode, tmp_path / "ref", data, callbacks, tools=csv_tool).train_model(data.train)
    expected = _lr_points(tmp_path / "ref")
    assert [step for step, _ in expected] == [0, STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    crashing = {**callbacks, "crash": CrashAtStepConfig(step=crash_step)}
    with pytest.raises(Crash):
        make_trainer(mode, tmp_path / "run", data, crashing, tools=csv_tool).train_model(data.train)
    resumed = make_trainer(mode, tmp_path / "run", data, callbacks, tools=csv_tool)
    resumed.train_model(data.train, ckpt_path="last")
    resumed_points = _lr_points(tmp_path / "run")
    assert resumed_points == expected, (resumed_points, expected)
