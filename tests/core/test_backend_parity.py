"""Backend parity: a zoo model with the same weights gives the same train losses, step after step."""

import jax
import numpy as np
import pytest
from flax import nnx

from jax_trainer.optimizer import AdamWConfig
from jax_trainer.zoo.base import BaseModelNNX
from jax_trainer.zoo.configs import CNNClassifierConfig, MLPClassifierConfig
from jax_trainer.zoo.convert import linen_to_nnx_state
from trainer_helpers import classifier, fixed_batches


def _losses(trainer, batches):
    trainer.init_optimizer(num_epochs=1, steps_per_epoch=len(batches))
    step = jax.jit(trainer.backend.train_step)
    state, losses = trainer.state, []
    for batch in batches:
        state, loss, _, _ = step(state, batch)
        losses.append(float(loss))
    return np.array(losses)


@pytest.mark.parametrize(
    "model",
    [MLPClassifierConfig(hidden_dims=[64, 32]), CNNClassifierConfig(channels=[8, 16], dropout=0.0, batch_norm=True)],
    ids=["mlp", "cnn"],
)
def test_same_weights_same_loss_sequence(tmp_path, model):
    batches = fixed_batches(20)
    optimizer = AdamWConfig(learning_rate=1e-3)
    linen = classifier("linen", tmp_path / "linen", model=model, optimizer=optimizer)
    nnx_trainer = classifier("nnx", tmp_path / "nnx", model=model, optimizer=optimizer)
    # Copy the linen initialisation into an nnx model of the same config, and start the nnx trainer from it.
    module = model.instantiate(BaseModelNNX, rngs=nnx.Rngs(0), exmp_input=batches[0].input)
    linen_to_nnx_state(linen.backend.model_state_dict(linen.model_state), module)
    nnx_trainer.model_state = nnx.state(module)
    linen_losses, nnx_losses = _losses(linen, batches), _losses(nnx_trainer, batches)
    assert linen_losses[-1] < linen_losses[0]
    np.testing.assert_allclose(nnx_losses, linen_losses, atol=1e-5, rtol=0)
