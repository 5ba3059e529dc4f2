"""A full disk during a run: one error line naming the checkpoint and the cause, exit code 74, the last good
checkpoint intact and readable, no temporary files of ours left. The disk is a 2 MB tmpfs (root only; skipped
where mounting is not allowed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jax_trainer.checkpoint import committed_steps
from jax_trainer.checkpoint.reading import read_meta, restore_raw
from jax_trainer.checkpoint.store import STATE

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits_mlp.yaml"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_ends_with_one_line_and_the_last_checkpoint_intact(small_disk):
    run = small_disk / "run"
    args = [sys.executable, "-m", "jax_trainer", "fit", str(EXAMPLE), f"trainer.logger.log_dir={run}"]
    proc = subprocess.run([*args, "trainer.train_epochs=8", "trainer.enable_progress_bar=false"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 74, proc.stderr[-3000:]
    ours = [line for line in proc.stderr.splitlines() if line.startswith("jax-trainer")]
    assert len(ours) == 1, ours
    assert ours[0].startswith("jax-trainer fit: I/O error: [Errno 28] ") and "No space left" in ours[0], ours
    assert str(run) in ours[0]  # the checkpoint or log file that could not be written
    assert "ERROR:absl" not in proc.stderr  # orbax's thread reports are not repeated
    steps = committed_steps(run / "checkpoints")
    assert steps, "the checkpoint written before the disk filled up"
    newest = run / "checkpoints" / str(steps[-1])
    sums = read_meta(newest)["checksums"][STATE]
    restore_raw(newest, STATE, checksums=sums)  # whole, and equal to what was saved
    leftovers = [p for p in run.rglob("*") if p.name.endswith((".orbax-checkpoint-tmp", ".tmp"))]
    assert leftovers == []


LATE_WRITE = """
import asyncio, gc, logging, sys
import tensorstore as ts
from jax_trainer.checkpoint.errors import CheckpointWriteError
from jax_trainer.checkpoint.store import CheckpointStore

logging.basicConfig()
try:
    CheckpointStore(sys.argv[1])  # a file where the folder should be: the store's write fails
except CheckpointWriteError as err:
    print(err, file=sys.stderr)

# What orbax does with a save whose first write fails: the event loop closes while another write is in flight.
promise, pending = ts.Promise.new()

async def failed_write():
    raise OSError(28, "No space left on device")

async def other_write():
    await pending

async def save():
    await asyncio.gather(failed_write(), other_write())

loop = asyncio.new_event_loop()
try:
    loop.run_until_complete(save())
except OSError:
    pass
finally:
    loop.close()
promise.set_result(1)  # the late write completes: tensorstore cannot deliver it to the closed loop
abandoned = loop.create_future()  # a write of the failed save that failed too, its error never retrieved
abandoned.set_exception(OSError(28, "No space left on device"))
del abandoned
gc.collect()
print("late write done", file=sys.stderr)
"""


def test_a_failed_saves_late_writes_print_no_event_loop_tracebacks(tmp_path):
    """Once a store's write failed, what the failed save's other writes report afterwards is not printed (the
    failure is raised once): tensorstore's 'Event loop is closed' tracebacks for writes completing after orbax
    closed the save's event loop, and asyncio's 'Future exception was never retrieved' for writes that failed too
    (each seen in about one full-disk run in six)."""
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run directory should be")
    proc = subprocess.run([sys.executable, "-c", LATE_WRITE, str(blocker / "checkpoints")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "cannot write checkpoint" in proc.stderr and "late write done" in proc.stderr, proc.stderr[-3000:]
    assert "Event loop is closed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "never retrieved" not in proc.stderr and "No space left" not in proc.stderr, proc.stderr[-3000:]
