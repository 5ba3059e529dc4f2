"""`jax-trainer tune`: a real study (worker processes, an SQLite file) survives SIGKILL, prunes, and its
best.yaml reproduces the best trial; a bad search space fails before any trial, naming the dotted path."""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")

from jax_trainer.config import ConfigError, load_config, parse  # noqa: E402
from jax_trainer.tune.space import prepare  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_tune.yaml"
N_TRIALS = 6
EPOCHS = 3


def _config(tmp_path: Path) -> dict:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["trainer"].update(train_epochs=EPOCHS, enable_progress_bar=False)
    data["trainer"]["logger"].update(log_dir=str(tmp_path / "run"), tool_config=None)
    data["model"]["hidden_dims"] = [32]
    data["tune"] = {
        "n_trials": N_TRIALS,
        "sampler": {"type": "tpe", "seed": 3, "n_startup_trials": 10},
        # One finished trial is enough to compare against; a trial worse than the median at any epoch stops.
        "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_epochs": 0},
        "space": {
            "optimizer.learning_rate.peak_value": {"type": "float", "low": 1.0e-5, "high": 3.0e-2, "log": True},
            "model.hidden_dims": {"type": "categorical", "choices": [[16], [32]]},
        },
        # Two good trials first: most of the log range (tiny learning rates) is then clearly worse and pruned.
        "enqueue": [
            {"optimizer.learning_rate.peak_value": 1.0e-2, "model.hidden_dims": [32]},
            {"optimizer.learning_rate.peak_value": 2.0e-2, "model.hidden_dims": [16]},
        ],
    }
    return data


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _tune(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jax_trainer", "tune", str(config), *args]


def _states(db: Path) -> dict[str, int]:
    if not db.is_file():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return dict(con.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
    except sqlite3.OperationalError:  # the schema is still being created
        return {}


def test_study_survives_sigkill_prunes_and_best_yaml_reproduces(tmp_path):
    config = _write(tmp_path, _config(tmp_path))
    study_dir, db = tmp_path / "run_tune", tmp_path / "run_tune" / "study.db"
    # 1. Start the study in its own process group; SIGKILL the whole group once a trial has finished.
    first = subprocess.Popen(
        _tune(config, "--jobs", "2"), cwd=tmp_path, env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _states(db).get("COMPLETE", 0) + _states(db).get("PRUNED", 0) < 1:
        assert first.poll() is None, "tune exited before any trial finished"
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(0.3)  # the killed workers' files are closed
    at_kill = _states(db)
    assert at_kill.get("COMPLETE", 0) + at_kill.get("PRUNED", 0) < N_TRIALS, at_kill

    # 2. The same command continues the study: stale RUNNING trials become FAIL, numbers are not reused.
    rerun = subprocess.run(_tune(config, "--jobs", "2"), cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    study = optuna.load_study(study_name="run_tune", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), numbers
    by_state = {s: [t for t in trials if t.state.name == s] for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    assert len(by_state["COMPLETE"]) + len(by_state["PRUNED"]) == N_TRIALS
    assert not by_state["RUNNING"]
    assert len(by_state["FAIL"]) == at_kill.get("RUNNING", 0)
    if at_kill.get("RUNNING", 0):
        assert "FAIL: left RUNNING by an earlier, interrupted run" in rerun.stdout
    assert by_state["PRUNED"], [(t.number, t.state.name, t.params) for t in trials]

    # Every finished trial trained in its own run folder; a pruned one stopped cleanly after the epoch it was pruned.
    for trial in by_state["COMPLETE"] + by_state["PRUNED"]:
        run_dir = study_dir / f"trial_{trial.number:04d}"
        written = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert (tmp_path / written["trainer"]["logger"]["log_dir"]).resolve() == run_dir.resolve()
        assert "tune" not in written
        epochs = sorted(run_dir.glob("metrics/val_epoch_*.json"))
        assert len(epochs) == len(trial.intermediate_values)
        assert "finished: success" in (run_dir / "train.log").read_text()
    assert any(len(t.intermediate_values) < EPOCHS for t in by_state["PRUNED"])

    # 3. Summary table, best.yaml and the plots.
    assert "PRUNED" in rerun.stdout and "COMPLETE" in rerun.stdout and "best trial" in rerun.stdout
    for png in ("optimization_history.png", "param_importances.png"):
        assert (study_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best_yaml = study_dir / "best.yaml"
    best_config = yaml.safe_load(best_yaml.read_text())
    assert "tune" not in best_config
    assert best_config["model"]["hidden_dims"] == json.loads(study.best_params["model.hidden_dims"])

    # 4. `jax-trainer fit best.yaml` reproduces the best trial's monitored value exactly.
    fit = subprocess.run(
        [sys.executable, "-m", "jax_trainer", "fit", str(best_yaml)], cwd=tmp_path, env=_env(),
        capture_output=True, text=True,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    results = json.loads(fit.stdout)
    refit = min(v["val/loss"] for k, v in results.items() if k != "test")
    assert refit == study.best_value, (refit, study.best_value)


def test_bad_search_space_fails_before_any_trial(tmp_path):
    data = _config(tmp_path)
    data["tune"]["space"]["model.hiden_dims"] = {"type": "categorical", "choices": [[8]]}
    config = _write(tmp_path, data)
    result = subprocess.run(_tune(config), cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "tune.space.model.hiden_dims" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run_tune").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "path, dist, expected",
    [
        ("model.hidden_dims.0", {"type": "float", "low": 8, "high": 64}, "expected int"),  # float into an int field
        ("optimizer.learning_rate.peak_value", {"type": "float", "low": 1.0, "high": 0.1}, "low (1) > high (0.1)"),
        ("model.hidden_dims", {"type": "categorical", "choices": []}, "non-empty"),
        ("model.dropout", {"type": "categorical", "choices": [0.0, "high"]}, "expected float"),
        ("model.hidden_dims.3", {"type": "int", "low": 8, "high": 64}, "no item 3"),
        ("trainer.logger.log_dir", {"type": "categorical", "choices": ["x"]}, "set by the tuner"),
    ],
)
def test_bad_search_space_names_the_dotted_path(tmp_path, path, dist, expected):
    data = _config(tmp_path)
    data["tune"]["space"] = {path: dist}
    data["tune"]["enqueue"] = []
    with pytest.raises(ConfigError) as err:
        prepare(copy.deepcopy(data))
    assert err.value.path.startswith(f"tune.space.{path}") and expected in str(err.value), str(err.value)
    assert not (tmp_path / "run_tune").exists()


def test_weight_decay_guard_applies_to_the_search_space(tmp_path):
    """Decay as an L2-style transform (added to the gradients) and AdamW's own decay together are refused by the
    optimizer builder; a space that samples one while the config has the other fails before any trial."""
    data = _config(tmp_path)
    data["optimizer"]["transforms"]["l2"] = {"class_name": "WeightDecay", "value": 1.0e-4, "before_optimizer": True}
    data["tune"]["space"] = {"optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 1.0e-2}}
    data["tune"]["enqueue"] = []
    with pytest.raises(ConfigError, match="weight decay is configured more than once") as err:
        prepare(copy.deepcopy(data))
    assert err.value.path == "tune.space.optimizer.weight_decay"
    # Both decays searched: every single value is fine with the other at 0, the combination of the highs is not.
    data["optimizer"]["transforms"]["l2"]["value"] = 0.0
    data["tune"]["space"]["optimizer.transforms.l2.value"] = {"type": "float", "low": 0.0, "high": 1.0e-3}
    with pytest.raises(ConfigError, match="weight decay is configured more than once") as err:
        prepare(copy.deepcopy(data))
    assert err.value.path == "tune.space" and "the combination" in str(err.value)


def test_fit_accepts_a_config_with_a_tune_section_and_help_imports_neither_jax_nor_optuna():
    config = load_config(EXAMPLE)
    assert config.tune is not None and "optimizer.weight_decay" in config.tune.space
    assert parse(yaml.safe_load(EXAMPLE.read_text())) == config
    code = (
        "import sys\nfrom jax_trainer.cli import build_parser\n"
        "for argv in (['--help'], ['tune', '--help']):\n"
        "    try:\n        build_parser().parse_args(argv)\n    except SystemExit:\n        pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'optuna', 'optax', 'flax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    from jax_trainer import bench, cli

    assert (cli.BENCH_STEPS, cli.BENCH_ROUNDS) == (bench.STEPS, bench.ROUNDS)
