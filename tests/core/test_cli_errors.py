"""`jax-trainer` on bad input: non-zero exit, one paragraph naming the dotted path, nothing created first."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from jax_trainer.cli import main
from jax_trainer.config import ConfigError, load_config, parse


def write_config(tmp_path) -> tuple[str, object]:
    log_dir = tmp_path / "run"
    data = {
        "trainer": {
            "class_name": "ImgClassifierTrainer",
            "model_mode": "nnx",
            "train_epochs": 1,
            "enable_progress_bar": False,
            "logger": {"log_dir": str(log_dir), "tool_config": {"class_name": "TensorboardToolLogger"}},
        },
        "model": {"class_name": "MLPClassifier", "hidden_dims": [8]},
        "optimizer": {
            "class_name": "AdamW",
            "learning_rate": {"class_name": "WarmupCosineDecaySchedule", "peak_value": 1e-3, "warmup_steps": 2},
        },
        "dataset": {"class_name": "DigitsDataset", "global_batch_size": 64},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path), log_dir


BAD_INPUTS = [
    (["trainer.unknown_key=1"], "trainer.unknown_key"),
    (["trainer.train_epochs=abc"], "trainer.train_epochs"),
    (["optimizer.class_name=Adamax"], "optimizer.class_name"),
    (["imports=[jt_no_such_module]"], "imports.0"),
    (["optimizer.learning_rate.decay_steps=5", "optimizer.learning_rate.steps=100"], "optimizer.learning_rate.decay_steps"),
    (["trainer.model_mode=foo"], "trainer.model_mode"),
    (["dataset=null"], "dataset"),
]


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
@pytest.mark.parametrize("overrides,path", BAD_INPUTS, ids=[b[1] for b in BAD_INPUTS])
def test_bad_input_exits_nonzero_naming_the_path(tmp_path, capsys, command, overrides, path):
    config, log_dir = write_config(tmp_path)
    extra = [] if command == "fit" else ["--ckpt-path", str(tmp_path / "ckpt")]
    assert main([command, config, *overrides, *extra]) != 0
    err = capsys.readouterr().err
    assert path in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not log_dir.exists(), "a failing command must not create the run directory"


def test_model_mode_error_lists_the_backends(tmp_path, capsys):
    config, _ = write_config(tmp_path)
    assert main(["fit", config, "trainer.model_mode=foo"]) != 0
    err = capsys.readouterr().err
    assert "trainer.model_mode" in err and "linen" in err and "nnx" in err


def test_debug_raises_with_the_traceback(tmp_path):
    config, _ = write_config(tmp_path)
    for argv in (["--debug", "fit", config, "trainer.train_epochs=abc"], ["fit", config, "trainer.train_epochs=abc", "--debug"]):
        with pytest.raises(ConfigError, match="trainer.train_epochs"):
            main(argv)


def test_validate_and_test_require_a_checkpoint(tmp_path):
    config, _ = write_config(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["validate", config])
    assert info.value.code != 0


def test_print_config_round_trips_without_creating_anything(tmp_path, capsys):
    config, log_dir = write_config(tmp_path)
    overrides = ["trainer.train_epochs=3", "optimizer.learning_rate.peak_value=3e-4", "trainer.model_mode=linen"]
    assert main(["fit", config, *overrides, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["train_epochs"] == 3 and printed["optimizer"]["learning_rate"]["peak_value"] == 3e-4
    assert parse(printed) == load_config(config, overrides)
    assert not log_dir.exists()


def test_python_dash_m_behaves_the_same(tmp_path):
    config, log_dir = write_config(tmp_path)
    bad = subprocess.run(
        [sys.executable, "-m", "jax_trainer", "fit", config, "trainer.train_epochs=abc"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert bad.returncode != 0
    assert "trainer.train_epochs" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run(
        [sys.executable, "-m", "jax_trainer", "fit", config, "--print-config"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert good.returncode == 0, good.stderr
    assert parse(yaml.safe_load(good.stdout)) == load_config(config)
    assert not log_dir.exists()


def test_a_missing_checkpoint_path_fails_before_anything_is_written(tmp_path, capsys):
    config, log_dir = write_config(tmp_path)
    assert main(["fit", config, "--ckpt-path", str(tmp_path / "no_such_run" / "checkpoints" / "7")]) == 2
    err = capsys.readouterr().err
    assert "CheckpointError" in err and "no_such_run" in err and "Traceback" not in err
    assert not log_dir.exists()


def test_an_io_failure_is_one_line_with_its_own_exit_code(tmp_path, capsys):
    config, log_dir = write_config(tmp_path)
    log_dir.write_text("a file where the run directory should be")
    assert main(["fit", config]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "I/O error" in err[0] and str(log_dir) in err[0], err
