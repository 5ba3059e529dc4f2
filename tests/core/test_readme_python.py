"""The README's "Train from Python" script, extracted between its marker comments and run as a user would
(``python train_from_python.py`` in a fresh folder), in a quick mode: one epoch instead of five."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainer_helpers import subprocess_env

README = Path(__file__).parents[2] / "README.md"
START, END = "<!-- train-from-python:start -->", "<!-- train-from-python:end -->"


def readme_script() -> str:
    text = README.read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    return block.split("```python\n", 1)[1].rsplit("```", 1)[0]


def test_the_readme_train_from_python_script_runs(tmp_path):
    script = readme_script()
    assert "train_epochs=5," in script
    (tmp_path / "train_from_python.py").write_text(script.replace("train_epochs=5,", "train_epochs=1,"))
    done = subprocess.run(
        [sys.executable, "train_from_python.py"], cwd=tmp_path, env=subprocess_env(tmp_path),
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for mode in ("nnx", "linen"):
        assert f"{mode} test: {{'test/acc'" in done.stdout
        assert (tmp_path / "runs" / f"python_{mode}" / "config.yaml").is_file()
