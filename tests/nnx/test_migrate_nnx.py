"""linen -> nnx migration with the zoo CNN, through the files of examples/migrate_linen_to_nnx/.

One linen run (module fixture) feeds every test: converted by `jax-trainer migrate` for the zoo nnx CNN
and for a port with other names plus a rename-rule file, then trained on under nnx; and the bridge route.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from jax_trainer import cli
from jax_trainer.config import load_config
from jax_trainer.run import build_data, build_trainer
from jax_trainer.checkpoint.rundir import EXAMPLE_FILE, load_example_batch
from jax_trainer.trainer import TrainerModule
from jax_trainer.checkpoint import committed_steps, resolve
from jax_trainer.checkpoint.reading import read_meta

EXAMPLE = Path(__file__).parents[2] / "examples" / "migrate_linen_to_nnx"
SMALL = [
    "dataset.val_size=0.4", "dataset.test_size=0.4", "dataset.global_batch_size=32", "trainer.train_epochs=1",
    "optimizer.learning_rate.warmup_steps=3",
]
EPOCHS, STEPS = 8, 18  # the demo's linen run as written: 1167 training digits / 64 per step


@pytest.fixture(scope="module")
def linen_run(tmp_path_factory):
    """The demo's step 0 as its README runs it (only the run folder moved; a mid-epoch checkpoint too)."""
    run = tmp_path_factory.mktemp("linen")
    overrides = [f"trainer.logger.log_dir={run}", "trainer.callbacks.ModelCheckpoint.every_n_train_steps=8"]
    assert cli.main(["fit", str(EXAMPLE / "train_linen.yaml"), *overrides]) == 0
    return run


def test_the_linen_demo_learns_the_digits(linen_run):
    """The demo's CNN is a working model, not one that looks broken (it once ended at 0.365 test accuracy)."""
    test = json.loads((linen_run / "metrics" / f"test_epoch_{EPOCHS:04d}.json").read_text())
    assert test["test/acc"] >= 0.9


def _outputs(run_dir: Path, exmp) -> np.ndarray:
    trainer = TrainerModule.load_from_checkpoint(run_dir, log_dir=run_dir / "eval")
    return np.asarray(trainer.bind_model()(trainer.batch_to_input(exmp)))


def test_zoo_cnn_converts_with_equal_outputs_and_trains_on(linen_run, tmp_path, capsys):
    out = tmp_path / "nnx"
    assert cli.main(["migrate", str(linen_run), "--out", str(out), "--model", str(EXAMPLE / "nnx_model.yaml")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimizer_state"] and report["parity"]["passed"]
    assert report["parity"]["eval"] <= 1e-5 and report["parity"]["train"] <= 1e-5
    meta = read_meta(resolve("last", out))
    assert (meta["backend"], meta["step"], meta["epoch_done"]) == ("nnx", EPOCHS * STEPS, True)

    exmp = load_example_batch(linen_run / EXAMPLE_FILE)
    np.testing.assert_allclose(_outputs(out, exmp), _outputs(linen_run, exmp), atol=1e-5, rtol=0)

    more = f"trainer.train_epochs={EPOCHS + 2}"
    assert cli.main(["fit", str(out / "config.yaml"), more, "--ckpt-path", "last"]) == 0
    assert max(committed_steps(out / "checkpoints")) == (EPOCHS + 2) * STEPS
    val = json.loads((out / "metrics" / f"val_epoch_{EPOCHS + 2:04d}.json").read_text())
    assert np.isfinite(val["val/loss"]) and val["step"] == (EPOCHS + 2) * STEPS


def test_renamed_port_needs_and_uses_rename_rules(linen_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(EXAMPLE)  # `imports: [renamed_cnn]` resolves from the working directory
    model = str(EXAMPLE / "renamed_model.yaml")
    assert cli.main(["migrate", str(linen_run), "--out", str(tmp_path / "bad"), "--model", model]) == 2
    err = capsys.readouterr().err
    assert "features_1/kernel" in err and "conv1/kernel" in err  # the unmatched names of both sides are listed
    assert not (tmp_path / "bad").exists()  # a failed migration leaves no run folder behind

    out = tmp_path / "renamed"
    args = ["migrate", str(linen_run), "--out", str(out), "--model", model, "--rules", str(EXAMPLE / "rules.yaml")]
    assert cli.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"]["eval"] <= 1e-5 and report["parity"]["train"] <= 1e-5
    assert report["optimizer_state"]  # Adam moments followed the renaming
    assert cli.main(["fit", str(out / "config.yaml"), f"trainer.train_epochs={EPOCHS + 1}", "--ckpt-path", "last"]) == 0


def test_parity_failure_exits_non_zero(linen_run, tmp_path, capsys):
    args = ["migrate", str(linen_run), "--out", str(tmp_path / "nnx"), "--weights-only", "--tolerance", "-1"]
    assert cli.main(args) == 1
    assert "outputs differ by more than" in capsys.readouterr().err
    assert not read_meta(resolve("last", tmp_path / "nnx"))["has_optimizer"]


def test_bridge_trains_the_linen_model_under_nnx(tmp_path):
    config = load_config(EXAMPLE / "bridge_nnx.yaml", [*SMALL, f"trainer.logger.log_dir={tmp_path}"])
    _, data = build_data(config)
    trainer = build_trainer(config, next(iter(data.train)))
    before = trainer.eval_model(data.val, "val", 0)["val/loss"]
    start = jax.tree.map(np.asarray, trainer.backend.model_state_dict(trainer.model_state))
    metrics = trainer.train_model(data.train, data.val, num_epochs=2)
    end = jax.tree.map(np.asarray, trainer.backend.model_state_dict(trainer.model_state))
    assert metrics[2]["val/loss"] < before
    # the wrapped linen module's parameters were optimised and its batch statistics updated
    for path in (("conv1", "kernel"), ("head", "kernel"), ("bn1", "mean"), ("bn2", "var")):
        node_start, node_end = start["linen"], end["linen"]
        for key in path:
            node_start, node_end = node_start[key], node_end[key]
        assert not np.allclose(node_start, node_end), path
