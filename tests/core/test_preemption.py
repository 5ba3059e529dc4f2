"""Preemption and sharing a run directory, through the command line in subprocesses (both backends).

SIGTERM or SIGINT at a random step: the run finishes the dispatched step, checkpoints the exact position, exits
143 / 130 with one line, and ``--ckpt-path last`` ends bitwise equal to an uninterrupted run. A second signal aborts
at once. Two runs into one directory: the second fails at once naming the first's PID; a killed run's lock does
not block.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jax_trainer.checkpoint import committed_steps, resolve
from jax_trainer.checkpoint.reading import read_meta, restore_raw
from jax_trainer.checkpoint.store import STATE
from trainer_helpers import subprocess_env

CONFIG = """
seed: 3
imports: [slow_steps]
trainer:
  class_name: ImgClassifierTrainer
  train_epochs: 2
  enable_progress_bar: false
  logger: {log_dir: unset, log_steps_every: 4}
  callbacks:
    ckpt: {class_name: ModelCheckpoint, monitor: val/acc, mode: max, save_top_k: 1, save_last: true, every_n_train_steps: 5}
    slow: {class_name: SlowSteps, seconds: SECONDS}
model: {class_name: MLPClassifier, hidden_dims: [16], dropout: 0.1}
optimizer: {class_name: AdamW, learning_rate: 3.0e-3}
dataset: {class_name: DigitsDataset, global_batch_size: 32, val_size: 0.4, test_size: 0.4}
"""


def _config(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / f"config_{seconds}.yaml"
    path.write_text(CONFIG.replace("SECONDS", str(seconds)))
    return path


def _fit(config: Path, mode: str, log_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "jax_trainer", "fit", str(config), f"trainer.model_mode={mode}"]
    return subprocess.Popen(
        [*args, f"trainer.logger.log_dir={log_dir}", *extra],
        env=subprocess_env(log_dir.parent), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended first: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def _final_state(log_dir: Path) -> dict:
    return restore_raw(resolve("last", log_dir), STATE)


def _epoch_files(log_dir: Path) -> dict:
    return {
        p.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "train/epoch_time"}
        for p in sorted((log_dir / "metrics").glob("*.json"))
    }


# Each backend and each signal once (the signal path is the same code in both backends; the suite's time is kept).
@pytest.mark.parametrize("mode, sig", [("linen", signal.SIGTERM), ("nnx", signal.SIGINT)], ids=["linen-SIGTERM", "nnx-SIGINT"])
def test_a_signal_checkpoints_the_exact_position_and_the_resume_is_bitwise(mode, sig, tmp_path):
    slow, fast = _config(tmp_path, 0.03), _config(tmp_path, 0.0)
    ref = tmp_path / "ref"
    reference = _fit(fast, mode, ref)
    run = tmp_path / "run"
    proc = _fit(slow, mode, run)
    _wait_for(lambda: bool(committed_steps(run / "checkpoints")), proc)  # training is under way
    time.sleep(random.Random(int(sig)).uniform(0.0, 0.25))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert f"stopped by {sig.name} at step" in line and "resume with --ckpt-path last" in line, err[-2000:]
    assert "Traceback" not in err
    step = int(line.split(" at step ")[1].split(";")[0])
    assert max(committed_steps(run / "checkpoints")) == step
    meta = read_meta(run / "checkpoints" / str(step))
    assert meta["has_optimizer"] and (meta["interrupted"] or meta["epoch_done"])
    assert not [p for p in (run / "checkpoints").iterdir() if not p.name.isdigit()]  # no temporary folder left
    assert "finished: interrupted" in (run / "train.log").read_text()

    assert reference.wait(timeout=120) == 0, reference.stderr.read()[-2000:]
    resumed = _fit(fast, mode, run, "--ckpt-path", "last")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-2000:]
    expected, got = _final_state(ref), _final_state(run)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert np.array_equal(value, got[key]), key
    assert _epoch_files(run) == _epoch_files(ref)
    assert step not in committed_steps(run / "checkpoints") or step in committed_steps(ref / "checkpoints")


def test_a_second_signal_aborts_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _fit(_config(tmp_path, 0.2), "nnx", run)
    _wait_for(lambda: (run / "checkpoints").is_dir() or (run / "metrics").is_dir(), proc)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)  # not at once: the OS would merge the two into one delivery
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM


def test_one_run_per_directory(tmp_path):
    run = tmp_path / "run"
    first = _fit(_config(tmp_path, 0.05), "nnx", run)
    _wait_for(lambda: (run / "train.log").is_file(), first)
    second = _fit(_config(tmp_path, 0.0), "nnx", run)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and f"in use by another run (process {first.pid})" in err, err[-2000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    third = _fit(_config(tmp_path, 0.0), "nnx", run, "--ckpt-path", "last")  # a killed run's lock does not block
    _, err = third.communicate(timeout=120)
    assert third.returncode == 0, err[-2000:]
