"""A checkpoints folder that is read-only: refused at setup when it already is, and, when it turns read-only during
the run, the next checkpoint fails at once. Either way one error line naming the folder and the cause, exit code 74,
no orbax warnings at exit, and the last good checkpoint intact. The folder is a read-only bind mount (root only;
skipped where mounting is not allowed); each run is bounded by its subprocess timeout (orbax used to wait 300 s for
a directory-creation signal that a failed save never sent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jax_trainer.checkpoint import committed_steps
from jax_trainer.checkpoint.reading import read_meta, restore_raw
from jax_trainer.checkpoint.store import STATE
from trainer_helpers import subprocess_env

CONFIG = """
seed: 5
imports: [read_only_after]
trainer:
  class_name: ImgClassifierTrainer
  train_epochs: 2
  enable_progress_bar: false
  logger: {log_dir: LOG_DIR, log_steps_every: 50}
  callbacks:
    ckpt: {class_name: ModelCheckpoint, monitor: val/acc, mode: max, save_top_k: 1, save_last: true}
    read_only: {class_name: ReadOnlyAfter, path: CHECKPOINTS, epoch: 2}
model: {class_name: MLPClassifier, hidden_dims: [16]}
optimizer: {class_name: AdamW, learning_rate: 3.0e-3}
dataset: {class_name: DigitsDataset, global_batch_size: 100, val_size: 0.2}
"""


@pytest.fixture
def checkpoints(tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fit(tmp_path: Path, checkpoints: Path, *extra: str) -> subprocess.CompletedProcess:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("LOG_DIR", str(checkpoints.parent)).replace("CHECKPOINTS", str(checkpoints)))
    return subprocess.run(
        [sys.executable, "-m", "jax_trainer", "fit", str(config), *extra],
        env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=60,
    )


def _one_read_only_line(proc: subprocess.CompletedProcess, path: Path) -> str:
    assert proc.returncode == 74, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if line.startswith("jax-trainer")]
    assert len(ours) == 1, ours
    assert ours[0].startswith("jax-trainer fit: I/O error: [Errno 30] ") and "Read-only file system" in ours[0], ours
    assert str(path) in ours[0], ours
    assert "never awaited" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return ours[0]


def _intact(checkpoints: Path, step: int) -> None:
    assert committed_steps(checkpoints) == [step]
    assert [p.name for p in checkpoints.iterdir() if not p.name.isdigit()] == []  # no temporary folders left
    newest = checkpoints / str(step)
    restore_raw(newest, STATE, checksums=read_meta(newest)["checksums"][STATE])  # whole, equal to what was saved


def test_a_checkpoints_folder_turning_read_only_fails_at_once_then_is_refused_at_setup(tmp_path, checkpoints):
    # Read-only from the end of epoch 2's validation: its checkpoint fails at once, epoch 1's stays.
    line = _one_read_only_line(_fit(tmp_path, checkpoints), checkpoints)
    assert f"cannot write checkpoint {checkpoints}/" in line
    first_epoch = committed_steps(checkpoints)
    _intact(checkpoints, first_epoch[0])

    # Resuming into the read-only folder is refused before anything is built or compiled.
    resumed = _fit(tmp_path, checkpoints, "--ckpt-path", "last")
    _one_read_only_line(resumed, checkpoints)
    assert "Epoch" not in resumed.stderr and "Model summary" not in resumed.stderr, resumed.stderr[-3000:]
    _intact(checkpoints, first_epoch[0])
