"""Exact resume after SIGKILL, both backends, through the command line (backends only in subprocesses).

Each backend gets two killed runs (started through tests/slow_save_fit.py, which delays orbax's final rename):
one killed at a random step (saves slowed a little so the kill can land anywhere, inside a save included), one
killed while a save is certainly in progress (a long delay before the rename). The earlier checkpoint must
be intact; ``fit --ckpt-path last`` must then end with the uninterrupted run's parameters (bitwise, CPU)
and metrics files; the reference run reloaded in a fresh process must reproduce its test metrics.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from jax_trainer.backends import available_backends
from jax_trainer.checkpoint import committed_steps, resolve
from jax_trainer.checkpoint.reading import read_meta, restore_raw
from jax_trainer.checkpoint.store import STATE
from trainer_helpers import subprocess_env

MODES = tuple(available_backends())
TESTS = Path(__file__).parent.parent
CONFIG = """
seed: 7
trainer:
  class_name: ImgClassifierTrainer
  train_epochs: 2
  enable_progress_bar: false
  logger: {log_dir: unset, log_steps_every: 4}
  callbacks:
    ckpt:
      {class_name: ModelCheckpoint, monitor: val/acc, mode: max, save_top_k: 1, save_last: true, every_n_train_steps: 4}
    stop: {class_name: EarlyStopping, monitor: val/loss, patience: 5}
model: {class_name: MLPClassifier, hidden_dims: [16], dropout: 0.1}
optimizer:
  class_name: AdamW
  learning_rate: {class_name: WarmupCosineDecaySchedule, peak_value: 1.0e-2, warmup_steps: 5}
dataset: {class_name: DigitsDataset, global_batch_size: 32, val_size: 0.4, test_size: 0.4}
"""
TIMING_KEYS = ("train/epoch_time",)


def _fit_until_killed(config: Path, mode: str, log_dir: Path, delay: float, should_kill) -> None:
    env = subprocess_env(log_dir.parent)
    args = [sys.executable, str(TESTS / "slow_save_fit.py"), str(delay), "fit", str(config), f"trainer.model_mode={mode}"]
    proc = subprocess.Popen(
        [*args, f"trainer.logger.log_dir={log_dir}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while proc.poll() is None and not should_kill(log_dir / "checkpoints"):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{log_dir}: the run ended before it could be killed"


def _after_step(step: int):
    return lambda ckpts: bool(committed_steps(ckpts)) and max(committed_steps(ckpts)) >= step


def _during_save(ckpts: Path) -> bool:
    return bool(committed_steps(ckpts)) and any(p.name.endswith(".orbax-checkpoint-tmp") for p in ckpts.iterdir())


def _epoch_files(log_dir: Path) -> dict:
    files = {}
    for path in sorted((log_dir / "metrics").glob("*.json")):
        files[path.name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING_KEYS}
    return files


def _final_state(log_dir: Path) -> dict:
    return restore_raw(resolve("last", log_dir), STATE)


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    rng = random.Random(0)
    kills = {"random": (0.05, lambda: _after_step(rng.randint(4, 16))), "mid_save": (1.0, lambda: _during_save)}
    threads = [
        threading.Thread(
            target=_fit_until_killed, args=(config, mode, tmp_path / f"{mode}_killed_{kind}", delay, condition())
        )
        for mode in MODES
        for kind, (delay, condition) in kills.items()
    ]
    for thread in threads:  # the mid-save runs mostly sleep in the delayed save: all four at once
        thread.start()
    for thread in threads:
        thread.join()
    for mode in MODES:
        for kind in kills:
            ckpts = tmp_path / f"{mode}_killed_{kind}" / "checkpoints"
            assert committed_steps(ckpts), ckpts
            read_meta(resolve("last", ckpts.parent))  # the newest complete checkpoint is whole
            restore_raw(resolve("last", ckpts.parent), STATE)
        interrupted = tmp_path / f"{mode}_killed_mid_save" / "checkpoints"
        assert any(p.name.endswith(".orbax-checkpoint-tmp") for p in interrupted.iterdir())

    drivers = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "resume_kill_driver.py"), str(config), str(tmp_path / f"{mode}.json"),
             str(tmp_path), mode],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(tmp_path),
        )
        for mode in MODES
    ]
    for driver in drivers:
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err.decode()[-3000:]

    for mode in MODES:
        ref = tmp_path / f"{mode}_ref"
        reference = _final_state(ref)
        for kind in kills:
            run = tmp_path / f"{mode}_killed_{kind}"
            resumed = _final_state(run)
            assert resumed.keys() == reference.keys()
            for key, value in reference.items():
                assert value.dtype == resumed[key].dtype and np.array_equal(value, resumed[key]), (mode, kind, key)
            assert _epoch_files(run) == _epoch_files(ref), (mode, kind)
            assert committed_steps(run / "checkpoints") == committed_steps(ref / "checkpoints")
        evaluations = json.loads((tmp_path / f"{mode}.json").read_text())[mode]
        test_file = json.loads(next((ref / "metrics").glob("test_epoch_*.json")).read_text())
        for how, metrics in evaluations.items():
            assert metrics.keys() == {"test/acc", "test/loss"}
            for key, value in metrics.items():
                assert abs(value - test_file[key]) <= 1e-6, (mode, how, key)
    assert not list(tmp_path.rglob("*.pkl"))
