"""flax.linen backend: an explicit TrainState stepped by pure functions.

User hooks: ``loss_function_linen(params, state, batch, rng, train)`` → ``(loss, (mutable_variables, metrics))``,
with the helper ``model_linen_apply`` (defined here, called through the trainer) that builds linen's ``variables``
and ``mutable=`` from the TrainState.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import optax
from flax import linen as nn
from flax import serialization, struct

import jax_trainer.zoo.linen  # noqa: F401  (registers the zoo's linen models under BaseModelLinen)
from jax_trainer.backends.base import (
    MODEL,
    OPTIMIZER,
    RUN_ONCE_OPTIONS,
    Backend,
    check_loss_output,
    instantiate_model,
)
from jax_trainer.optimizer.paths import param_path
from jax_trainer.precision import cast_like
from jax_trainer.zoo.base import BaseModelLinen


class TrainState(struct.PyTreeNode):
    """Everything a linen run changes: parameters, mutable collections (``batch_stats``), optimizer state, rng."""

    step: jax.Array
    params: Any
    mutable_variables: Any
    opt_state: Any
    rng: jax.Array
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: Any = struct.field(pytree_node=False, default=None)


def _annotations(variables) -> dict[str, tuple]:
    """Per-dimension names of the boxed (``nn.with_partitioning`` / logical) variables, by path; ``params/``
    dropped, as the optimizer keys parameters."""
    found = {}
    boxed = jax.tree_util.tree_flatten_with_path(variables, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    for key_path, leaf in boxed[0]:
        if isinstance(leaf, nn.Partitioned):
            path = param_path(key_path)
            found[path.removeprefix("params/")] = tuple(leaf.names)
    return found


def _is_linen_loss_output(out) -> bool:
    return isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple) and len(out[1]) == 2


def _init(model, init_rng, dropout_rng, x):
    return model.init({"params": init_rng, "dropout": dropout_rng}, x, train=False)


# The model is a static argument, so a second trainer of the same model and input shapes in this process (tests, a
# benchmark's rounds, tune trials) reuses the compiled init; a model with unhashable fields compiles its own.
_INIT = jax.jit(_init, static_argnums=0, compiler_options=RUN_ONCE_OPTIONS)


def _init_variables(model, init_rng, dropout_rng, x):
    """``model.init`` in eval mode, compiled (once per model and input shapes) without backend optimizations; traced
    as part of the caller's program when called inside one (the trainer's sharded build on a mesh)."""
    if isinstance(init_rng, jax.core.Tracer):
        return _init(model, init_rng, dropout_rng, x)
    try:
        hash(model)
    except TypeError:
        return jax.jit(functools.partial(_init, model), compiler_options=RUN_ONCE_OPTIONS)(init_rng, dropout_rng, x)
    return _INIT(model, init_rng, dropout_rng, x)


class LinenBackend(Backend):
    """Models registered under ``BaseModelLinen``; the user hook is ``loss_function_linen``."""

    name = "linen"
    model_interface = BaseModelLinen

    def init_model(self, model_config, exmp_input, seed: int) -> TrainState:
        model = instantiate_model(model_config, self.model_interface, self.name)
        init_rng, dropout_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
        variables = _init_variables(model, init_rng, dropout_rng, exmp_input)
        self._annotations = _annotations(variables)
        variables = dict(nn.meta.unbox(variables))  # the steps and the optimizer see plain arrays
        params = variables.pop("params")
        return TrainState(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            mutable_variables=variables,
            opt_state=None,
            rng=state_rng,
            apply_fn=model.apply,
        )

    def partition_annotations(self) -> dict[str, tuple]:
        return dict(getattr(self, "_annotations", {}))

    def init_train_state(self, model_state: TrainState, tx) -> TrainState:
        return model_state.replace(opt_state=tx.init(model_state.params), tx=tx)

    def train_step(self, state: TrainState, batch, **loss_kwargs):
        rng, step_rng = jax.random.split(state.rng)

        def loss_fn(params, mutable_variables, batch):
            return self._loss(params, state.replace(mutable_variables=mutable_variables), batch, step_rng, True, loss_kwargs)

        grad_fn = jax.value_and_grad(self.precision.wrap(loss_fn), has_aux=True)
        (loss, (mutables, metrics)), grads = grad_fn(state.params, state.mutable_variables, batch)
        if mutables:  # computed in the loss's dtype, stored in the state's
            mutables = cast_like(mutables, {name: state.mutable_variables[name] for name in mutables})
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            mutable_variables={**state.mutable_variables, **(mutables or {})},
            opt_state=opt_state,
            rng=rng,
        )
        return new_state, loss, metrics, grads

    def eval_step(self, model_state: TrainState, batch, **loss_kwargs):
        def loss_fn(params, mutable_variables, batch):
            state = model_state.replace(mutable_variables=mutable_variables)
            return self._loss(params, state, batch, model_state.rng, False, loss_kwargs)

        loss, (_, metrics) = self.precision.wrap(loss_fn, differentiated=False)(
            model_state.params, model_state.mutable_variables, batch
        )
        return loss, metrics

    def _loss(self, params, state, batch, rng, train: bool, loss_kwargs: dict):
        out = self.hooks.loss_function_linen(params, state, batch, rng, train=train, **loss_kwargs)
        return check_loss_output(out, "loss_function_linen", "(loss, (mutable_variables, metrics))", _is_linen_loss_output)

    def default_loss(self, params, state, batch, rng, train: bool = True, **loss_kwargs):
        hooks = self.hooks
        outputs, mutables = hooks.model_linen_apply(params, state, hooks.batch_to_input(batch), rng, train)
        loss, metrics = hooks.output_loss(outputs, batch, **loss_kwargs)
        return loss, (mutables, metrics)

    def model_linen_apply(self, params, state: TrainState, inputs, rng, train: bool = True):
        """Apply with the mutable collections (``batch_stats``) and a dropout rng → ``(output, mutable_variables)``;
        in eval mode nothing is mutable and the mutable variables come back empty."""
        variables = {"params": params, **state.mutable_variables}
        mutable = list(state.mutable_variables) if train and state.mutable_variables else False
        out = state.apply_fn(variables, inputs, train=train, rngs={"dropout": rng}, mutable=mutable)
        return out if mutable else (out, {})

    def opt_state(self, state: TrainState):
        return state.opt_state

    def params(self, model_state: TrainState):
        return model_state.params

    def with_params(self, model_state: TrainState, params) -> TrainState:
        return model_state.replace(params=params)

    def model_state(self, state: TrainState) -> TrainState:
        return state.replace(opt_state=None, tx=None)

    def state_dict(self, state: TrainState) -> dict:
        optimizer = {"step": state.step, "opt_state": serialization.to_state_dict(state.opt_state)}
        return {MODEL: self.model_state_dict(state), OPTIMIZER: optimizer, "rng": state.rng}

    def load_state_dict(self, state: TrainState, tree: dict) -> TrainState:
        model = self.load_model_state_dict(state, tree[MODEL])
        opt_state = serialization.from_state_dict(state.opt_state, tree[OPTIMIZER]["opt_state"])
        return model.replace(step=tree[OPTIMIZER]["step"], opt_state=opt_state, rng=tree["rng"], tx=state.tx)

    def model_state_dict(self, model_state: TrainState) -> dict:
        """linen's own ``variables``: ``params`` and the mutable collections by name."""
        return {"params": model_state.params, **model_state.mutable_variables}

    def load_model_state_dict(self, model_state: TrainState, tree: dict) -> TrainState:
        mutables = {name: tree[name] for name in model_state.mutable_variables}
        return model_state.replace(params=tree["params"], mutable_variables=mutables)

    def bind(self, model_state: TrainState) -> Callable[[Any], Any]:
        variables = self.model_state_dict(model_state)
        apply = jax.jit(lambda v, x: model_state.apply_fn(v, x, train=False))
        return lambda x: apply(variables, x)
