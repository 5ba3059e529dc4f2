"""`jax-trainer fit examples/digits_mlp.yaml` trains under both backends from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from jax_trainer.cli import main
from jax_trainer.config import load_config, parse

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.yaml"


def test_fit_example_from_the_command_line(tmp_path, capsys, mode):
    log_dir = tmp_path / "run"
    overrides = [f"trainer.model_mode={mode}", f"trainer.logger.log_dir={log_dir}", "trainer.enable_progress_bar=false"]
    assert main(["fit", str(EXAMPLE), *overrides]) == 0
    results = json.loads(capsys.readouterr().out)
    assert set(results) >= {str(e) for e in range(1, 11)} and "val/acc" in results["10"]
    for epoch in range(1, 11):
        assert (log_dir / "metrics" / f"val_epoch_{epoch:04d}.json").is_file()
    final = json.loads((log_dir / "metrics" / "val_epoch_0010.json").read_text())
    assert final["val/acc"] >= 0.95, final
    # The run directory's config.yaml is the resolved config: it parses back to the same run.
    written = parse(yaml.safe_load((log_dir / "config.yaml").read_text()))
    assert written == load_config(EXAMPLE, overrides)
    assert written.trainer.model_mode == mode and written.trainer.train_epochs == 10


def test_the_console_shows_the_summary_and_the_first_epoch(tmp_path):
    example = Path(__file__).parents[2] / "examples" / "digits_mlp.yaml"
    args = [sys.executable, "-m", "jax_trainer", "fit", str(example), f"trainer.logger.log_dir={tmp_path / 'run'}"]
    proc = subprocess.run([*args, "trainer.train_epochs=2", "trainer.enable_progress_bar=false",
                           "optimizer.learning_rate.warmup_steps=5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Model summary (nnx backend, MLPClassifier)" in proc.stderr
    assert "INFO:jax_trainer:Epoch 1 train:" in proc.stderr
