"""What ``jax-trainer fit`` shows on the console, in a real pseudo-terminal (100 columns) and into a pipe.

Both run ``python -m jax_trainer fit examples/digits_mlp.yaml`` (its progress bar is forced on) for two epochs.
On the terminal the screen is rebuilt from the bytes (tests/terminal_screen.py): every epoch's train and val line,
epoch 1 included, is a whole line of its own, never drawn over or glued to a bar; every bar's last drawing shows
N/N; the run ends naming its folder and its best checkpoint. Into a pipe there are no carriage returns at all: each
bar is one line at its final count.
"""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from terminal_screen import render
from trainer_helpers import subprocess_env

REPO = Path(__file__).parents[2]
EPOCHS = 2
TRAIN_STEPS, VAL_STEPS = 18, 5  # digits with val_size 0.15, test_size 0.2, batch 64


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("console_cache")


def _command(log_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "jax_trainer", "fit", "examples/digits_mlp.yaml",
        f"trainer.train_epochs={EPOCHS}", f"trainer.logger.log_dir={log_dir}", "trainer.logger.tool_config=null",
    ]  # fmt: skip


def _env(cache_dir) -> dict:
    return {**subprocess_env(cache_dir), "COLUMNS": "100", "LINES": "40", "TERM": "xterm"}


def _run_in_pty(command: list[str], env: dict) -> str:
    """The command's output as a terminal of 100 columns receives it (stdout and stderr on the same pty)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def _check_epoch_lines(lines: list[str]) -> None:
    for epoch in range(1, EPOCHS + 1):
        for phase in ("train", "val"):
            prefix = f"INFO:jax_trainer:Epoch {epoch} {phase}: "
            found = [line for line in lines if f"Epoch {epoch} {phase}: " in line]
            assert len(found) == 1, (epoch, phase, found)
            assert found[0].startswith(prefix) and "it/s" not in found[0] and "|" not in found[0], found[0]


def _bar_lines(lines: list[str], name: str) -> list[str]:
    return [line for line in lines if line.startswith(f"{name}:") and "|" in line]


def test_console_in_a_pseudo_terminal(tmp_path, cache_dir):
    log_dir = tmp_path / "run"
    raw = _run_in_pty(_command(log_dir), _env(cache_dir))
    screen = render(raw)
    _check_epoch_lines(screen)
    assert all(len(line) <= 100 for line in screen if "|" in line and "it/s" in line)
    for epoch in range(1, EPOCHS + 1):
        for name, total in ((f"Epoch {epoch}", TRAIN_STEPS), (f"Val {epoch}", VAL_STEPS)):
            bars = _bar_lines(screen, name)
            assert len(bars) == 1 and f"| {total}/{total} " in bars[0], (name, bars)
            # the last drawing of the bar in the byte stream is its final count as well
            drawings = re.findall(rf"{name}: .*?\| (\d+)/{total} ", raw)
            assert drawings and drawings[-1] == str(total), (name, drawings)
    last = [line for line in screen if line][-1]
    best = re.fullmatch(rf"jax-trainer fit: run folder {re.escape(str(log_dir))}; best checkpoint (\S+)", last)
    assert best is not None, last
    assert Path(best.group(1)).parent == log_dir / "checkpoints" and Path(best.group(1)).is_dir()


def test_console_into_a_pipe(tmp_path, cache_dir):
    log_dir = tmp_path / "run"
    proc = subprocess.run(_command(log_dir), cwd=REPO, env=_env(cache_dir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stderr
    lines = proc.stderr.splitlines()
    _check_epoch_lines(lines)
    for epoch in range(1, EPOCHS + 1):
        for name, total in ((f"Epoch {epoch}", TRAIN_STEPS), (f"Val {epoch}", VAL_STEPS)):
            bars = _bar_lines(lines, name)
            assert len(bars) == 1 and f"| {total}/{total} " in bars[0], (name, bars)
    assert lines[-1].startswith(f"jax-trainer fit: run folder {log_dir}; best checkpoint {log_dir / 'checkpoints'}/")
