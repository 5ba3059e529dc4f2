"""flax.nnx backend: the model and optimizer are split once into (graphdef, state) and stepped by pure functions
over the state, which the loop compiles with ``jax.jit`` — not ``nnx.jit`` per step, whose graph traversal on every
call costs about half the throughput of a small model.

User hook: ``loss_function(model, batch, train)`` → ``(loss, metrics)``. Train and eval differ only in static
attributes (Dropout's ``deterministic``, BatchNorm's ``use_running_average``): training uses the graphdef of
(model, optimizer) in train mode, eval and inference the graphdef of the model alone in eval mode, over the model
part of the same state.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import compoconf
import jax
from flax import nnx

import jax_trainer.zoo.nnx  # noqa: F401  (registers the zoo's nnx models under BaseModelNNX)
from jax_trainer.backends.base import MODEL, OPTIMIZER, Backend, check_loss_output, instantiate_model
from jax_trainer.precision import cast_like
from jax_trainer.zoo.base import BaseModelNNX

_HINT = "; a linen model can run under nnx through the bridge (see jax_trainer.migrate)"


def _takes_exmp_input(model_config, interface) -> bool:
    """Whether the model's constructor takes ``exmp_input``: the zoo's do; models written for the original
    jax_trainer (``__init__(self, config, rngs)``) size their layers themselves and are built without it."""
    try:
        cls = compoconf.Registry.get_class(interface, model_config.class_name)
    except KeyError:
        return True  # instantiate_model reports the unknown model
    parameters = inspect.signature(cls.__init__).parameters.values()
    return any(p.name == "exmp_input" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _is_nnx_loss_output(out) -> bool:
    return isinstance(out, tuple) and len(out) == 2


class NNXBackend(Backend):
    """Models registered under ``BaseModelNNX``; the user hook is ``loss_function``."""

    name = "nnx"
    model_interface = BaseModelNNX

    def init_model(self, model_config, exmp_input, seed: int) -> nnx.State:
        extra = {"exmp_input": exmp_input} if _takes_exmp_input(model_config, self.model_interface) else {}
        build = functools.partial(instantiate_model, model_config, self.model_interface, self.name, _HINT, **extra)
        try:  # annotated variables are sharded as they are made, over the trainer's mesh (its context)
            model = build(rngs=nnx.Rngs(seed))
        except ValueError as err:  # no mesh, or names that are logical: the trainer's placement lays them out
            if "shard" not in str(err) and "mesh" not in str(err):
                raise
            with nnx.use_eager_sharding(False):
                model = build(rngs=nnx.Rngs(seed))
        model.eval()
        self._model_eval_graphdef, state = nnx.split(model)
        self._annotations = {
            "/".join(map(str, path)): tuple(names)
            for path, variable in nnx.to_flat_state(state)
            if (names := variable.get_metadata().get("out_sharding")) is not None
        }
        return state

    def partition_annotations(self) -> dict[str, tuple]:
        return dict(getattr(self, "_annotations", {}))

    def init_train_state(self, model_state: nnx.State, tx) -> nnx.State:
        """The state of the pair (model, optimizer): entry 0 the model, entry 1 the optimizer (named in
        :meth:`state_dict`)."""
        model = nnx.merge(self._model_eval_graphdef, model_state)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        self._train_graphdef, state = nnx.split((model, optimizer))
        model.eval()
        return state

    def train_step(self, state: nnx.State, batch, **loss_kwargs):
        model, optimizer = nnx.merge(self._train_graphdef, state)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss_fn(params, rest, batch):  # pure, so that the precision and remat wrappers see pytrees
            model = nnx.merge(graphdef, params, rest, copy=True)  # new Variables, of this trace level
            loss, metrics = self._loss(model, batch, True, loss_kwargs)
            return loss, (nnx.state(model, nnx.Not(nnx.Param)), metrics)

        grad_fn = jax.value_and_grad(self.precision.wrap(loss_fn), has_aux=True)
        (loss, (new_rest, metrics)), grads = grad_fn(params, rest, batch)
        nnx.update(model, cast_like(new_rest, rest))  # batch statistics, rng counts: back in the state's dtypes
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss, metrics, grads

    def eval_step(self, model_state: nnx.State, batch, **loss_kwargs):
        graphdef = self._model_eval_graphdef

        def loss_fn(model_state, batch):
            return self._loss(nnx.merge(graphdef, model_state), batch, False, loss_kwargs)

        return self.precision.wrap(loss_fn, differentiated=False)(model_state, batch)

    def _loss(self, model, batch, train: bool, loss_kwargs: dict):
        out = self.hooks.loss_function(model, batch, train=train, **loss_kwargs)
        return check_loss_output(out, "loss_function", "(loss, metrics)", _is_nnx_loss_output)

    def default_loss(self, model, batch, train: bool = True, **loss_kwargs):
        hooks = self.hooks
        return hooks.output_loss(hooks.model_apply(model, hooks.batch_to_input(batch), train), batch, **loss_kwargs)

    def opt_state(self, state: nnx.State):
        return state[1]["opt_state"]

    def params(self, model_state: nnx.State):
        return nnx.filter_state(model_state, nnx.Param)

    def with_params(self, model_state: nnx.State, params: nnx.State) -> nnx.State:
        return nnx.merge_state(model_state, params)

    def model_state(self, state: nnx.State) -> nnx.State:
        return state[0]

    def state_dict(self, state: nnx.State) -> dict:
        return {MODEL: _pure(state[0]), OPTIMIZER: _pure(state[1])}

    def load_state_dict(self, state: nnx.State, tree: dict) -> nnx.State:
        return _replaced(state, {0: tree[MODEL], 1: tree[OPTIMIZER]})

    def model_state_dict(self, model_state: nnx.State) -> dict:
        """``nnx.to_pure_dict`` of the model state (PRNG keys as their raw data)."""
        return _pure(model_state)

    def load_model_state_dict(self, model_state: nnx.State, tree: dict) -> nnx.State:
        return _replaced(model_state, tree)

    def bind(self, model_state: nnx.State) -> Callable[[Any], Any]:
        graphdef = self._model_eval_graphdef
        apply = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        return lambda x: apply(model_state, x)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _pure(state: nnx.State) -> dict:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, nnx.to_pure_dict(state))


def _replaced(state: nnx.State, tree: dict) -> nnx.State:
    """A copy of ``state`` holding the values of ``tree`` (a :func:`_pure` dict; raw key data wrapped back)."""
    template = nnx.to_pure_dict(state)
    values = jax.tree.map(lambda t, v: jax.random.wrap_key_data(v) if _is_key(t) else v, template, tree)
    new_state = jax.tree.map(lambda x: x, state)
    nnx.replace_by_pure_dict(new_state, values)
    return new_state
