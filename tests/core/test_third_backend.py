"""A third backend, written here as README's "Adding a backend" describes, goes through what a backend must carry:
``fit`` with mid-epoch checkpoints, an exact resume, ``load_from_checkpoint`` (from the run's config.yaml, so the
config parses the model against this backend's interface) and ``bind_model``. Nothing in jax_trainer is changed:
the model interface and config are registered with compoconf and the backend with ``register_backend``.

A model of this backend is a plain pair of functions over a params pytree: ``init(rng, x) -> params`` and
``apply(params, x, rng, train) -> outputs``. ``ImgClassifierTrainer`` writes its loss once, on outputs, so it
serves this backend unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from compoconf import ConfigInterface, RegistrableConfigInterface, register, register_interface

from jax_trainer.backends import Backend, available_backends, register_backend
from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.checkpoint import MODEL, committed_steps
from jax_trainer.checkpoint.reading import read_meta
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig, TrainerModule
from checkpoint_scenarios import Crash, CrashAtStepConfig
from trainer_helpers import digits_splits


# ----------------------------------------------------------------------------- the backend (one file for a user)
@register_interface
class PlainModel(RegistrableConfigInterface):
    """Models of the plain backend: ``init(rng, x) -> params`` and ``apply(params, x, rng, train) -> outputs``."""


@dataclass
class PlainMLPConfig(ConfigInterface):
    hidden: int = 64
    num_classes: int = 10
    dropout: float = 0.1


@register
class PlainMLP(PlainModel):
    config: PlainMLPConfig

    def __init__(self, config: PlainMLPConfig):
        self.config = config

    def init(self, rng, x):
        k1, k2 = jax.random.split(rng)
        n_in = int(np.prod(x.shape[1:]))
        dense = lambda k, n, m: {"kernel": jax.random.normal(k, (n, m)) / np.sqrt(n), "bias": jnp.zeros((m,))}
        return {"l1": dense(k1, n_in, self.config.hidden), "head": dense(k2, self.config.hidden, self.config.num_classes)}

    def apply(self, params, x, rng, train: bool):
        h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["l1"]["kernel"] + params["l1"]["bias"])
        if train and self.config.dropout:
            keep = jax.random.bernoulli(rng, 1.0 - self.config.dropout, h.shape)
            h = jnp.where(keep, h / (1.0 - self.config.dropout), 0.0)
        return h @ params["head"]["kernel"] + params["head"]["bias"]


class PlainBackend(Backend):
    """State: ``{"params", "rng"}`` (the model), plus ``"opt_state"`` when training."""

    name = "plain"
    model_interface = PlainModel

    def init_model(self, model_config, exmp_input, seed: int):
        self.model = model_config.instantiate(PlainModel)
        init_rng, rng = jax.random.split(jax.random.PRNGKey(seed))
        return {"params": self.model.init(init_rng, jnp.asarray(exmp_input)), "rng": rng}

    def init_train_state(self, model_state, tx):
        self.tx = tx
        return {**model_state, "opt_state": tx.init(model_state["params"])}

    def train_step(self, state, batch, **loss_kwargs):
        rng, step_rng = jax.random.split(state["rng"])
        inputs = self.hooks.batch_to_input(batch)

        def loss_fn(params):
            return self.hooks.output_loss(self.model.apply(params, inputs, step_rng, True), batch, **loss_kwargs)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
        new_state = {"params": optax.apply_updates(state["params"], updates), "rng": rng, "opt_state": opt_state}
        return new_state, loss, metrics, grads

    def eval_step(self, model_state, batch, **loss_kwargs):
        outputs = self.model.apply(model_state["params"], self.hooks.batch_to_input(batch), None, False)
        return self.hooks.output_loss(outputs, batch, **loss_kwargs)

    def opt_state(self, state):
        return state["opt_state"]

    def params(self, model_state):
        return model_state["params"]

    def model_state(self, state):
        return {"params": state["params"], "rng": state["rng"]}

    def state_dict(self, state):
        return {MODEL: self.model_state_dict(state), "optimizer": {"opt_state": state["opt_state"]}, "rng": state["rng"]}

    def load_state_dict(self, state, tree):
        return {"params": tree[MODEL]["params"], "rng": tree["rng"], "opt_state": tree["optimizer"]["opt_state"]}

    def model_state_dict(self, model_state):
        return {"params": model_state["params"]}

    def load_model_state_dict(self, model_state, tree):
        return {**model_state, "params": tree["params"]}

    def bind(self, model_state):
        apply = jax.jit(lambda params, x: self.model.apply(params, x, None, False))
        return lambda x: apply(model_state["params"], x)


register_backend("plain", PlainBackend)


# ----------------------------------------------------------------------------- the test
SPLITS = digits_splits(batch_size=64)
STEPS_PER_EPOCH = len(SPLITS.train)


def _trainer(log_dir, crash_at: int | None = None) -> TrainerModule:
    callbacks = {
        "ckpt": ModelCheckpointConfig(monitor="val/acc", mode="max", save_last=True, every_n_train_steps=7),
    }
    if crash_at is not None:
        callbacks["crash"] = CrashAtStepConfig(step=crash_at)
    config = ImgClassifierTrainerConfig(
        model_mode="plain",
        train_epochs=3,
        enable_progress_bar=False,
        logger=LoggerConfig(log_dir=str(log_dir), log_steps_every=5),
        callbacks=callbacks,
    )
    return ImgClassifierTrainer(config, PlainMLPConfig(), AdamWConfig(learning_rate=1e-2), next(iter(SPLITS.train)))


def _arrays(trainer) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(trainer.backend.state_dict(trainer.state))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def _epoch_files(log_dir) -> dict:
    return {
        p.name: {k: v for k, v in json.loads(p.read_text()).items() if k != "train/epoch_time"}
        for p in sorted((log_dir / "metrics").glob("*.json"))
    }


def test_a_backend_registered_in_a_test_file_trains_resumes_and_reloads(tmp_path):
    assert "plain" in available_backends()
    full = _trainer(tmp_path / "full")
    results = full.train_model(SPLITS.train, SPLITS.val, SPLITS.test)
    assert results[3]["val/acc"] > 0.8, results  # it learns
    assert results["test"]["test/acc"] > 0.8

    crash_step = STEPS_PER_EPOCH + 10  # inside epoch 2, after the save at a multiple of 7 before it
    crashed = _trainer(tmp_path / "part", crash_at=crash_step)
    try:
        crashed.train_model(SPLITS.train, SPLITS.val)
        raise AssertionError("the run should have crashed")
    except Crash:
        pass
    last = max(committed_steps(tmp_path / "part" / "checkpoints"))
    meta = read_meta(tmp_path / "part" / "checkpoints" / str(last))
    assert meta["backend"] == "plain" and not meta["epoch_done"] and STEPS_PER_EPOCH < last < crash_step  # epoch 2

    resumed = _trainer(tmp_path / "part")
    resumed.train_model(SPLITS.train, SPLITS.val, SPLITS.test, ckpt_path="last")
    reference, got = _arrays(full), _arrays(resumed)
    assert reference.keys() == got.keys() and any("opt_state" in k for k in reference)
    for key, value in reference.items():
        assert np.array_equal(value, got[key]), key  # bitwise: model, optimizer and rng
    assert _epoch_files(tmp_path / "part") == _epoch_files(tmp_path / "full")

    x = next(iter(SPLITS.test)).input
    expected = np.asarray(full.bind_model()(x))
    for which in ("last", "best"):
        loaded = ImgClassifierTrainer.load_from_checkpoint(tmp_path / "full", which=which, log_dir=tmp_path / which)
        assert loaded.backend.name == "plain" and isinstance(loaded.model_config, PlainMLPConfig)
        if which == "last":
            np.testing.assert_array_equal(np.asarray(loaded.bind_model()(x)), expected)
        else:
            best = full.callbacks[0].best_model_path
            assert loaded.global_step == int(best.rsplit("/", 1)[1])
