"""Hand-written train steps of the zoo models, one per framework: the baseline ``jax-trainer bench`` measures the
trainer against. Each is what a careful user writes by hand: one ``jax.jit`` step with donated state over the
model's own state layout (linen: params, mutable collections, optimizer state, rng; nnx: ``nnx.split`` once and
``nnx.merge`` inside ``jax.jit``, no ``nnx.jit``).
"""

from __future__ import annotations

import functools

import jax
import optax
from flax import nnx

from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX


def classification_loss(logits, labels):
    """Cross-entropy on integer labels, with loss and accuracy as metrics."""
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, {"loss": loss, "acc": (logits.argmax(-1) == labels).mean()}


def linen_step(model_config, seed: int, tx, exmp):
    """(state, jitted step) of a plain linen loop: params, mutable collections, optimizer state, rng."""
    model = model_config.instantiate(BaseModelLinen)
    init_rng, dropout_rng, rng = jax.random.split(jax.random.PRNGKey(seed), 3)
    variables = dict(model.init({"params": init_rng, "dropout": dropout_rng}, exmp.input, train=False))
    params = variables.pop("params")
    mutable = list(variables) or False  # e.g. ["batch_stats"]

    def loss_fn(params, variables, batch, step_rng):
        out = model.apply(
            {"params": params, **variables}, batch.input, train=True, rngs={"dropout": step_rng}, mutable=mutable
        )
        logits, new_variables = out if mutable else (out, {})
        loss, metrics = classification_loss(logits, batch.target)
        return loss, (new_variables, metrics)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        params, variables, opt_state, rng = state
        rng, step_rng = jax.random.split(rng)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (variables, metrics)), grads = grad_fn(params, variables, batch, step_rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), variables, opt_state, rng), metrics

    return (params, variables, tx.init(params), rng), step


def nnx_step(model_config, seed: int, tx, exmp):
    """(state, jitted step) of a plain nnx loop: split once, merge inside ``jax.jit`` (no ``nnx.jit``)."""
    model = model_config.instantiate(BaseModelNNX, rngs=nnx.Rngs(seed), exmp_input=exmp.input)
    model.train()
    graphdef, state = nnx.split((model, nnx.Optimizer(model, tx, wrt=nnx.Param)))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, batch):
        model, optimizer = nnx.merge(graphdef, state)
        grad_fn = nnx.value_and_grad(lambda m: classification_loss(m(batch.input), batch.target), has_aux=True)
        (_, metrics), grads = grad_fn(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), metrics

    return state, step


REFERENCE_STEPS = {"linen": linen_step, "nnx": nnx_step}
"""``(model config, seed, optax transformation, example batch) -> (state, jitted step)`` by framework."""
