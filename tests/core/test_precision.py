"""trainer.precision and trainer.remat, for linen and nnx: what is stored, what the compiled step computes in, and
that the numbers hold (digits accuracy, the same loss with remat, less temporary memory)."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest

from jax_trainer.callbacks import ModelCheckpointConfig
from jax_trainer.config import ConfigError, parse
from jax_trainer.zoo.configs import CNNClassifierConfig, MLPClassifierConfig
from trainer_helpers import classifier, digits_splits, fixed_batches

MODES = ("linen", "nnx")  # the backends that apply trainer.precision (the test's third backend does not)


def _param_dtypes(trainer) -> set:
    return {leaf.dtype for leaf in jax.tree.leaves(trainer.backend.params(trainer.model_state))}


def _op_dtypes(hlo: str, op: str) -> set[str]:
    """Element types of the results of every ``op`` in a StableHLO module's text."""
    lines = [line for line in hlo.splitlines() if f"stablehlo.{op}" in line]
    assert lines, f"no {op} in the lowered step"
    return {re.findall(r"tensor<[0-9x]*x?(\w+)>", line.rsplit("->", 1)[-1])[-1] for line in lines}


def _lowered_train_step(trainer, batch) -> str:
    trainer.init_optimizer(num_epochs=1, steps_per_epoch=10)
    return jax.jit(trainer.backend.train_step).lower(trainer.state, batch).as_text()


@pytest.mark.parametrize("mode", MODES)
def test_bf16_mixed_stores_float32_computes_bfloat16(tmp_path, mode):
    splits = digits_splits()
    ckpt = {"ModelCheckpoint": ModelCheckpointConfig(save_last=True)}
    mixed = classifier(mode, tmp_path / "mixed", splits=splits, precision="bf16-mixed", train_epochs=2, callbacks=ckpt)
    full = classifier(mode, tmp_path / "fp32", splits=splits, train_epochs=2)
    acc_mixed = mixed.train_model(splits.train, splits.val)[2]["val/acc"]
    acc_full = full.train_model(splits.train, splits.val)[2]["val/acc"]
    assert abs(acc_mixed - acc_full) <= 0.01, (acc_mixed, acc_full)
    # Parameters and optimizer state stay float32 in the train state ...
    assert _param_dtypes(mixed) == {np.dtype("float32")}
    assert {x.dtype for x in jax.tree.leaves(mixed.backend.opt_state(mixed.state)) if x.ndim} == {np.dtype("float32")}
    # ... and in the checkpoint: an fp32 trainer loads it (restore compares every entry's dtype with the stored one).
    full.load_model_checkpoint(tmp_path / "mixed")  # its last checkpoint
    # The compiled step's matmuls are bfloat16, and fp32's are not.
    batch = next(iter(splits.train))
    assert _op_dtypes(_lowered_train_step(mixed, batch), "dot_general") == {"bf16"}
    assert _op_dtypes(_lowered_train_step(full, batch), "dot_general") == {"f32"}


@pytest.mark.parametrize("mode", MODES)
def test_bf16_mixed_convolutions_are_bfloat16(tmp_path, mode):
    model = CNNClassifierConfig(channels=[4], dropout=0.0, batch_norm=False)
    trainer = classifier(mode, tmp_path, model=model, precision="bf16-mixed")
    assert _op_dtypes(_lowered_train_step(trainer, fixed_batches(1)[0]), "convolution") == {"bf16"}


@pytest.mark.parametrize("mode", MODES)
def test_bf16_true_parameters_are_bfloat16(tmp_path, mode):
    splits = digits_splits()
    trainer = classifier(mode, tmp_path, splits=splits, precision="bf16-true", max_steps=3)
    assert _param_dtypes(trainer) == {np.dtype("bfloat16")}
    trainer.train_model(splits.train)
    assert _param_dtypes(trainer) == {np.dtype("bfloat16")}
    assert trainer.global_step == 3


@pytest.mark.parametrize("mode", MODES)
def test_remat_same_loss_less_temporary_memory(tmp_path, mode):
    # gelu keeps two activations per layer for the backward pass (relu's one is already its input to the next).
    model = MLPClassifierConfig(hidden_dims=[32] * 16, activation="gelu")
    batch = jax.tree.map(lambda x: np.concatenate([x] * 8), fixed_batches(1, 64)[0])  # activations >> parameters
    results = []
    for remat in (False, True):
        trainer = classifier(mode, tmp_path / str(remat), model=model, remat=remat)
        trainer.init_optimizer(num_epochs=1, steps_per_epoch=10)
        compiled = jax.jit(trainer.backend.train_step).lower(trainer.state, batch).compile()
        loss = float(compiled(trainer.state, batch)[1])
        results.append((loss, compiled.memory_analysis().temp_size_in_bytes))
    (loss, temp), (remat_loss, remat_temp) = results
    assert abs(remat_loss - loss) <= 1e-6, (loss, remat_loss)
    assert remat_temp < temp, (temp, remat_temp)


@pytest.mark.parametrize(
    "field, value",
    [("precision", "bf16"), ("remat_policy", "save_only_these_names"), ("remat_segments", 0)],
)
def test_bad_values_name_the_field(field, value):
    config = {
        "trainer": {"class_name": "ImgClassifierTrainer", field: value},
        "model": {"class_name": "MLPClassifier"},
        "optimizer": {"class_name": "AdamW", "learning_rate": 1e-3},
    }
    with pytest.raises(ConfigError, match=f"trainer.{field} must be"):
        parse(config)
