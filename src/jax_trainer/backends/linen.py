"""flax.linen backend: an explicit TrainState stepped by pure functions."""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax
from flax import serialization, struct

from jax_trainer.backends.base import Backend, check_loss_output
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


def _is_linen_loss_output(out) -> bool:
    return isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], tuple) and len(out[1]) == 2


class LinenBackend(Backend):
    name = "linen"
    model_interface = BaseModelLinen

    def init_model(self, model_config, exmp_input, seed: int) -> TrainState:
        model = _instantiate(model_config, self.model_interface, "linen")
        init_rng, dropout_rng, state_rng = jax.random.split(jax.random.PRNGKey(seed), 3)
        variables = jax.jit(lambda x: model.init({"params": init_rng, "dropout": dropout_rng}, x, train=False))(
            exmp_input
        )
        variables = dict(variables)
        params = variables.pop("params")
        return TrainState(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            mutable_variables=variables,
            opt_state=None,
            rng=state_rng,
            apply_fn=model.apply,
        )

    def init_train_state(self, model_state: TrainState, tx) -> TrainState:
        return model_state.replace(opt_state=tx.init(model_state.params), tx=tx)

    def train_step(self, state: TrainState, batch, **loss_kwargs):
        rng, step_rng = jax.random.split(state.rng)

        def loss_fn(params):
            out = self.trainer.loss_function_linen(params, state, batch, step_rng, train=True, **loss_kwargs)
            return check_loss_output(
                out, "loss_function_linen", "(loss, (mutable_variables, metrics))", _is_linen_loss_output
            )

        (loss, (mutables, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            mutable_variables={**state.mutable_variables, **(mutables or {})},
            opt_state=opt_state,
            rng=rng,
        )
        return new_state, loss, metrics, grads

    def eval_step(self, state: TrainState, batch, **loss_kwargs):
        out = self.trainer.loss_function_linen(state.params, state, batch, state.rng, train=False, **loss_kwargs)
        loss, (_, metrics) = check_loss_output(
            out, "loss_function_linen", "(loss, (mutable_variables, metrics))", _is_linen_loss_output
        )
        return loss, metrics

    def opt_state(self, state: TrainState):
        return state.opt_state

    def params(self, state: TrainState):
        return state.params

    def model_state(self, state: TrainState) -> TrainState:
        return state.replace(opt_state=None, tx=None)

    def state_dict(self, state: TrainState) -> dict:
        return serialization.to_state_dict(state)

    def load_state_dict(self, state: TrainState, tree: dict) -> TrainState:
        return serialization.from_state_dict(state, tree)

    def bind(self, model_state: TrainState) -> Callable[[Any], Any]:
        variables = {"params": model_state.params, **model_state.mutable_variables}
        apply = jax.jit(lambda v, x: model_state.apply_fn(v, x, train=False))
        return lambda x: apply(variables, x)


def _instantiate(model_config, interface, backend: str):
    try:
        return model_config.instantiate(interface)
    except KeyError as err:
        raise ValueError(
            f"model.class_name: {model_config.class_name!r} has no {backend} implementation "
            f"(it is not registered under {interface.__name__})."
        ) from err
