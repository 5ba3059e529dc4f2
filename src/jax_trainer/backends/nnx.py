"""flax.nnx backend: the model and optimizer are split once into (graphdef, state) and stepped by
pure functions over the state, which the loop compiles with ``jax.jit`` — not ``nnx.jit`` per step,
whose graph traversal on every call costs about half the throughput of a small model.

Train and eval differ only in static attributes (Dropout's ``deterministic``, BatchNorm's
``use_running_average``): training uses the graphdef of (model, optimizer) in train mode, eval and
inference the graphdef of the model alone in eval mode, over the model part of the same state.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from jax_trainer.backends.base import Backend, check_loss_output
from jax_trainer.zoo.base import BaseModelNNX


def _is_nnx_loss_output(out) -> bool:
    return isinstance(out, tuple) and len(out) == 2


class NNXBackend(Backend):
    name = "nnx"
    model_interface = BaseModelNNX

    def init_model(self, model_config, exmp_input, seed: int) -> nnx.State:
        model = _instantiate_nnx(model_config, self.model_interface, exmp_input, seed)
        model.eval()
        self._model_eval_graphdef, state = nnx.split(model)
        return state

    def init_train_state(self, model_state: nnx.State, tx) -> nnx.State:
        model = nnx.merge(self._model_eval_graphdef, model_state)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        self._train_graphdef, state = nnx.split((model, optimizer))
        model.eval()
        return state

    def train_step(self, state: nnx.State, batch, **loss_kwargs):
        model, optimizer = nnx.merge(self._train_graphdef, state)

        def loss_fn(model):
            out = self.trainer.loss_function(model, batch, train=True, **loss_kwargs)
            return check_loss_output(out, "loss_function", "(loss, metrics)", _is_nnx_loss_output)

        (loss, metrics), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss, metrics, grads

    def eval_step(self, state: nnx.State, batch, **loss_kwargs):
        """``state`` is a model state (see :meth:`model_state`)."""
        model = nnx.merge(self._model_eval_graphdef, state)
        out = self.trainer.loss_function(model, batch, train=False, **loss_kwargs)
        return check_loss_output(out, "loss_function", "(loss, metrics)", _is_nnx_loss_output)

    def opt_state(self, state: nnx.State):
        return state[1]["opt_state"]

    def params(self, state: nnx.State):
        model_state = state[0] if 0 in state else state
        return nnx.filter_state(model_state, nnx.Param)

    def model_state(self, state: nnx.State) -> nnx.State:
        return state[0]

    def state_dict(self, state: nnx.State) -> dict:
        pure = nnx.to_pure_dict(state)
        return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, pure)

    def load_state_dict(self, state: nnx.State, tree: dict) -> nnx.State:
        template = nnx.to_pure_dict(state)
        values = jax.tree.map(lambda t, v: jax.random.wrap_key_data(v) if _is_key(t) else v, template, tree)
        new_state = jax.tree.map(lambda x: x, state)
        nnx.replace_by_pure_dict(new_state, values)
        return new_state

    def bind(self, model_state: nnx.State) -> Callable[[Any], Any]:
        graphdef = self._model_eval_graphdef
        apply = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        return lambda x: apply(model_state, x)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _instantiate_nnx(model_config, interface, exmp_input, seed: int):
    try:
        return model_config.instantiate(interface, rngs=nnx.Rngs(seed), exmp_input=exmp_input)
    except KeyError as err:
        raise ValueError(
            f"model.class_name: {model_config.class_name!r} has no nnx implementation "
            f"(it is not registered under {interface.__name__}); a linen model can run under nnx through "
            "the bridge (see jax_trainer.migrate)."
        ) from err
