"""EMA of the weights (``trainer.ema``), run by tests/core/test_backends_ema.py for every backend (``mode``).

The average is checked against a numpy EMA of the parameter sequence recorded step by step; evaluation with
``use_for_eval`` must use it (and differ from evaluating the trained weights); with ``ema: null`` the backend, its
state and its checkpoint tree are exactly those of a trainer without the feature.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jax_trainer.backends import get_backend
from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.optimizer.paths import param_path
from jax_trainer.trainer import ImgClassifierTrainer
from jax_trainer.trainer.ema import EMAConfig
from trainer_helpers import classifier, fixed_batches

DECAY, START, STEPS = 0.9, 3, 10


def _params(trainer) -> dict[str, np.ndarray]:
    """The raw (trained) parameters by path, copied to the host."""
    params = trainer.backend.params(trainer.model_state)
    return {param_path(p): np.array(leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


class RecordParams(Callback):
    """The parameters before the first step and after every step (a host copy per step: a test, not a feature)."""

    def __init__(self):
        super().__init__(CallbackConfig())
        self.seen = []

    def on_training_start(self) -> None:
        self.seen.append(_params(self.trainer))

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        self.seen.append(_params(self.trainer))


def _numpy_ema(sequence: list[dict], decay: float, start_step: int) -> dict:
    """The documented math in float64: ema_0 = p_0; ema_n = p_n for n <= start_step, else d * ema + (1 - d) * p_n."""
    ema = {k: v.astype(np.float64) for k, v in sequence[0].items()}
    for n, params in enumerate(sequence[1:], 1):
        ema = {k: params[k] if n <= start_step else decay * ema[k] + (1 - decay) * params[k] for k in ema}
    return ema


def test_ema_equals_a_numpy_ema_of_the_parameter_sequence(mode, tmp_path):
    trainer = classifier(mode, tmp_path, ema=EMAConfig(decay=DECAY, start_step=START))
    record = RecordParams()
    record.trainer = trainer
    trainer.callbacks.append(record)
    trainer.train_model(fixed_batches(STEPS, batch_size=16))
    assert len(record.seen) == STEPS + 1
    assert any(not np.array_equal(record.seen[0][k], record.seen[-1][k]) for k in record.seen[0])
    expected = _numpy_ema(record.seen, DECAY, START)
    tree = trainer.backend.state_dict(trainer.state)["model"]["ema"]
    assert int(tree["step"]) == STEPS
    found = {param_path(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree["params"])[0]}
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key].dtype == record.seen[0][key].dtype
        np.testing.assert_allclose(found[key], value, rtol=0, atol=1e-6, err_msg=key)
        assert not np.allclose(found[key], record.seen[-1][key], rtol=0, atol=1e-6) or "bias" in key, key


def test_eval_with_ema_differs_and_uses_the_average(mode, tmp_path):
    train, val = fixed_batches(8, batch_size=16), fixed_batches(2, batch_size=32)
    callbacks = {"ckpt": ModelCheckpointConfig(monitor="val/loss", save_top_k=1, save_optimizer_state=False)}
    on = classifier(mode, tmp_path / "on", train_epochs=2, ema=EMAConfig(decay=0.8, use_for_eval=True),
                    callbacks=callbacks)
    metrics = on.train_model(train, val)[2]

    # A plain trainer (no EMA) given the trained weights, then the average: only the average gives the same numbers.
    plain = classifier(mode, tmp_path / "plain")
    plain.model_state = on.model_state.base
    trained = plain.eval_model(val, "val", 2)
    without = np.asarray(plain.bind_model()(val[0].input))
    plain.model_state = on.backend.eval_weights(on.model_state)
    averaged = plain.eval_model(val, "val", 2)
    assert trained["val/loss"] != pytest.approx(metrics["val/loss"], abs=1e-4)
    assert averaged["val/loss"] == pytest.approx(metrics["val/loss"], abs=1e-6)

    with_ema = np.asarray(on.bind_model()(val[0].input))
    assert not np.allclose(with_ema, without, atol=1e-4)
    np.testing.assert_allclose(with_ema, np.asarray(plain.bind_model()(val[0].input)), atol=1e-6)
    assert np.array_equal(on.predict(val[:1]), with_ema)
    # A weights-only checkpoint carries the average: the rebuilt trainer evaluates it.
    loaded = ImgClassifierTrainer.load_from_checkpoint(tmp_path / "on", which="best")
    assert np.array_equal(np.asarray(loaded.bind_model()(val[0].input)), with_ema)


def test_ema_off_adds_nothing(mode, tmp_path):
    trainer = classifier(mode, tmp_path)
    assert type(trainer.backend) is get_backend(mode)
    trainer.init_optimizer(1, 2)
    with_ema = classifier(mode, tmp_path / "ema", ema=EMAConfig())
    with_ema.init_optimizer(1, 2)
    plain_leaves, ema_leaves = jax.tree.leaves(trainer.state), jax.tree.leaves(with_ema.state)
    params = jax.tree.leaves(trainer.backend.params(trainer.model_state))
    assert len(ema_leaves) == len(plain_leaves) + len(params) + 1  # the average and its step: only when on
    assert "ema" not in trainer.backend.state_dict(trainer.state)["model"]
