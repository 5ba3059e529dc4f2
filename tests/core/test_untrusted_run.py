"""`imports:` in a run directory's config.yaml is code: ``TrainerModule.load_from_checkpoint`` imports it (it rebuilds
the trainer from that file), while ``load_model_checkpoint`` on a trainer built from your own config reads only the
checkpoint's arrays and JSON metadata, so weights of an untrusted run load without running anything of it."""

from __future__ import annotations

import sys

import yaml

import jax
import numpy as np

from checkpoint_scenarios import assert_bitwise_equal, make_trainer, splits
from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.checkpoint import committed_steps
from jax_trainer.trainer import TrainerModule


def weights(trainer) -> dict:
    return jax.tree.map(np.asarray, trainer.backend.model_state_dict(trainer.model_state))


def test_load_model_checkpoint_does_not_run_the_runs_imports(mode, tmp_path, monkeypatch):
    data = splits()
    run_dir = tmp_path / "untrusted"
    trained = make_trainer(mode, run_dir, data, {"ckpt": ModelCheckpointConfig(save_last=True)}, epochs=1)
    trained.train_model(data.train)
    marker, module = tmp_path / "imported.marker", f"jt_untrusted_payload_{mode}"
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    monkeypatch.delitem(sys.modules, module, raising=False)
    config_file = run_dir / "config.yaml"
    config_file.write_text(yaml.safe_dump({**yaml.safe_load(config_file.read_text()), "imports": [module]}))
    checkpoint = run_dir / "checkpoints" / str(max(committed_steps(run_dir / "checkpoints")))

    trusted = make_trainer(mode, tmp_path / "mine", data)  # my own config, same model
    trusted.load_model_checkpoint(checkpoint)
    assert not marker.exists() and module not in sys.modules
    assert_bitwise_equal(weights(trusted), weights(trained))

    try:
        TrainerModule.load_from_checkpoint(run_dir)
        assert marker.read_text() == "ran"  # the run directory's imports ran: a run directory with imports is code
    finally:
        sys.modules.pop(module, None)
