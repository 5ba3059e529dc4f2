"""`jax-trainer predict` and `jax-trainer summary` from the command line (in process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jax_trainer.cli import main
from jax_trainer.config import load_config
from jax_trainer.run import build_data

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "digits_mlp.yaml")


def test_predict_writes_outputs_and_targets_of_a_split(tmp_path, capsys):
    run = f"trainer.logger.log_dir={tmp_path / 'run'}"
    assert main(["fit", EXAMPLE, run, "trainer.train_epochs=2", "trainer.enable_progress_bar=false"]) == 0
    out = tmp_path / "preds.npz"
    assert main(["predict", EXAMPLE, run, "--ckpt-path", "last", "--split", "val", "--out", str(out)]) == 0
    with np.load(out) as saved:
        outputs, targets = saved["outputs"], saved["targets"]
    _, splits = build_data(load_config(EXAMPLE))
    n = sum(len(b.target) for b in splits.val)
    assert outputs.shape == (n, 10) and targets.shape == (n,)
    accuracy = float((outputs.argmax(-1) == targets).mean())
    assert accuracy > 0.5  # a trained checkpoint, not fresh weights


def test_summary_prints_the_parameter_table_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["summary", EXAMPLE, f"trainer.logger.log_dir={run_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "l1/kernel" in printed and "(64, 256)" in printed and "Total: 85,002 parameters" in printed
    assert "optimizer state" in printed
    assert not run_dir.exists()
