"""Exact resume with the file-backed path: a run reading uint8 shards from disk (2 prefetch threads, per-batch
normalisation) is SIGKILLed after a mid-epoch checkpoint, and ``fit --ckpt-path last`` ends with bitwise the
parameters, optimizer state and metrics files of an uninterrupted run, for every backend."""

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

from jax_trainer import run
from jax_trainer.backends import available_backends
from jax_trainer.checkpoint import committed_steps, resolve
from jax_trainer.checkpoint.reading import restore_raw
from jax_trainer.checkpoint.store import STATE
from jax_trainer.config import load_config
from jax_trainer.datasets import write_npy_shards
from trainer_helpers import subprocess_env

MODES = tuple(available_backends())
STEPS_PER_EPOCH = 20  # 640 training rows, batch 32
CONFIG = """
seed: 11
IMPORTS
trainer:
  class_name: ImgClassifierTrainer
  train_epochs: 2
  enable_progress_bar: false
  logger: {log_dir: unset, log_steps_every: 4}
  callbacks:
    ckpt: {class_name: ModelCheckpoint, monitor: val/acc, mode: max, save_top_k: 1, save_last: true, every_n_train_steps: 6}
    SLOW
model: {class_name: MLPClassifier, hidden_dims: [16], dropout: 0.1}
optimizer: {class_name: AdamW, learning_rate: 3.0e-3}
dataset: {class_name: NpyShardsDataset, data_dir: DATA, global_batch_size: 32, val_size: 64, num_workers: 2,
          mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}
"""


def _config(tmp_path: Path, slow: bool) -> Path:
    text = CONFIG.replace("DATA", str(tmp_path / "data"))
    text = text.replace("IMPORTS", "imports: [slow_steps]" if slow else "")
    text = text.replace("SLOW", "slow: {class_name: SlowSteps, seconds: 0.03}" if slow else "")
    path = tmp_path / f"config_{'slow' if slow else 'fast'}.yaml"
    path.write_text(text)
    return path


def _fit(config: Path, mode: str, log_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "jax_trainer", "fit", str(config), f"trainer.model_mode={mode}"]
    return subprocess.Popen([*args, f"trainer.logger.log_dir={log_dir}", *extra], env=subprocess_env(log_dir.parent),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after_mid_epoch_checkpoint(proc: subprocess.Popen, ckpts: Path, after: int) -> None:
    def mid_epoch_checkpoint() -> bool:
        steps = committed_steps(ckpts) if ckpts.is_dir() else []
        return bool(steps) and max(steps) >= after and max(steps) % STEPS_PER_EPOCH != 0

    while proc.poll() is None and not mid_epoch_checkpoint():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _epoch_files(log_dir: Path) -> dict:
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "train/epoch_time"}
            for p in sorted((log_dir / "metrics").glob("*.json"))}


def test_sigkill_mid_epoch_then_resume_is_bitwise_with_file_backed_data(tmp_path):
    rng = np.random.default_rng(0)
    write_npy_shards(tmp_path / "data", {"x_train": rng.integers(0, 256, (704, 8, 8, 3), dtype=np.uint8),
                                         "y_train": rng.integers(0, 10, 704)}, rows_per_shard=200)
    slow, fast = _config(tmp_path, True), _config(tmp_path, False)
    killed = {mode: _fit(slow, mode, tmp_path / f"{mode}_run") for mode in MODES}
    pick = random.Random(0)
    killers = [threading.Thread(target=_kill_after_mid_epoch_checkpoint,
                                args=(proc, tmp_path / f"{mode}_run" / "checkpoints", pick.randint(6, 30)))
               for mode, proc in killed.items()]
    for thread in killers:
        thread.start()
    for mode in MODES:  # the uninterrupted runs, here, while the others train and die
        run.fit(load_config(fast, [f"trainer.model_mode={mode}", f"trainer.logger.log_dir={tmp_path / f'{mode}_ref'}"]))
    for thread in killers:
        thread.join()
    for mode, proc in killed.items():
        assert proc.returncode == -signal.SIGKILL, (mode, proc.stderr.read()[-2000:])
        steps = committed_steps(tmp_path / f"{mode}_run" / "checkpoints")
        assert max(steps) % STEPS_PER_EPOCH != 0, steps  # the resume starts mid-epoch

    resumed = {mode: _fit(fast, mode, tmp_path / f"{mode}_run", "--ckpt-path", "last") for mode in MODES}
    for mode, proc in resumed.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (mode, err[-3000:])
        ref, got = (restore_raw(resolve("last", tmp_path / f"{mode}_{kind}"), STATE) for kind in ("ref", "run"))
        assert ref.keys() == got.keys()
        for key, value in ref.items():
            assert value.dtype == got[key].dtype and np.array_equal(value, got[key]), (mode, key)
        assert _epoch_files(tmp_path / f"{mode}_run") == _epoch_files(tmp_path / f"{mode}_ref"), mode
