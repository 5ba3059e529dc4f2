"""EMA of the weights (``trainer.ema``): an exponential moving average of the parameters, kept on device.

The math, per train step (``n`` = 1, 2, ... counts the steps of the run; with ``accumulate_grad_batches`` every
micro-batch step counts)::

    ema_0 = params_0                                   (the parameters training starts from)
    ema_n = params_n                                   if n <= start_step
    ema_n = decay * ema_{n-1} + (1 - decay) * params_n  otherwise

so with ``start_step: 0`` every step averages, and with ``start_step: S`` the average starts from the parameters of
step S. Only the trainable parameters (``Backend.params``: the paths WeightDecay matches) are averaged, in their own
dtype; mutable collections (BatchNorm statistics) are used as they are. The update runs inside the compiled train
step (no host sync). With ``use_for_eval: true`` validation, test, ``predict`` and ``bind_model`` use the averaged
parameters (Keras' ``use_ema``; Lightning's ``EMAWeightAveraging`` callback).

How: :func:`with_ema` returns the backend class itself when ``trainer.ema`` is null — nothing is added to the state
or the step — else a subclass of it (:class:`EMABackendMixin` first) whose train and model states are
:class:`WithEMA` pairs of the backend's own state and the average. Everything else (the user's loss hooks, the
checkpoint names of the backend's own entries) is the backend's. The average is part of the model's state tree:
``model/ema/params/<parameter path>`` and ``model/ema/step`` in checkpoints, so full and weights-only checkpoints,
``load_model_checkpoint`` and ``load_from_checkpoint`` all carry it, and a resumed run continues it bitwise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from compoconf import ConfigInterface

from jax_trainer.backends.base import MODEL, Backend
from jax_trainer.errors import InputError
from jax_trainer.optimizer.paths import path_names

EMA = "ema"


@dataclass
class EMAConfig(ConfigInterface):
    """``trainer.ema``: ``decay`` in [0, 1) (Keras' ``ema_momentum``), ``start_step`` the steps that only copy the
    parameters before averaging starts, ``use_for_eval`` whether validation, test, predict and ``bind_model`` use
    the average. ``class_name`` is fixed ("EMA"; YAML may leave it out)."""

    class_name: str = field(init=False, default="EMA")
    decay: float = 0.999
    start_step: int = 0
    use_for_eval: bool = False

    def __post_init__(self):
        if isinstance(self.decay, bool) or not 0.0 <= self.decay < 1.0:
            raise ValueError(f"trainer.ema.decay must be in [0, 1), got {self.decay!r}.")
        if isinstance(self.start_step, bool) or self.start_step < 0:
            raise ValueError(f"trainer.ema.start_step must be >= 0, got {self.start_step!r}.")


class WithEMA(NamedTuple):
    """A backend's state (train state or model state) with the parameter average: ``params`` in the structure the
    backend's ``params`` gives, ``step`` the train steps folded in (int32)."""

    base: Any
    params: Any
    step: jax.Array


def ema_update(ema, params, step, decay: float, start_step: int):
    """One step of the average (``step``: this step's number n, see the module docstring)."""
    mixed = jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params)
    if start_step == 0:
        return mixed
    return jax.tree.map(lambda m, p: jnp.where(step > start_step, m, p), mixed, params)


def with_ema(backend_cls: type[Backend], config: EMAConfig | None) -> type[Backend]:
    """The backend class a trainer with ``trainer.ema = config`` uses: ``backend_cls`` itself when ``config`` is
    None (nothing added), else its EMA subclass (one class per backend, made once)."""
    if config is None:
        return backend_cls
    if backend_cls.with_params is Backend.with_params:
        raise InputError(
            f"trainer.ema: the {backend_cls.name} backend cannot replace a model's parameters (Backend.with_params); "
            "set trainer.ema to null or implement with_params in the backend."
        )
    return _ema_class(backend_cls)


@functools.cache
def _ema_class(backend_cls: type[Backend]) -> type[Backend]:
    # A subclass made at run time rather than a wrapper object: the backend's own methods (the loss hooks it serves,
    # model_linen_apply, ...) stay reachable unchanged, and isinstance checks on the backend keep holding.
    namespace = {"__doc__": EMABackendMixin.__doc__, "__module__": __name__}
    return type(f"EMA{backend_cls.__name__}", (EMABackendMixin, backend_cls), namespace)


class EMABackendMixin(Backend):
    """A backend whose train and model states carry the EMA of the parameters (placed before the backend class)."""

    def __init__(self, hooks=None, precision=None):
        super().__init__(hooks, precision)
        self.ema_config: EMAConfig = hooks.config.ema

    # Every method takes a WithEMA or the backend's own plain state: the backend's methods call each other on its
    # own states (linen's state_dict calls model_state_dict), and those calls must reach its own code unchanged.

    # ----------------------------------------------------------------- state
    def _with_ema(self, model_state) -> WithEMA:
        """A model state with an average: a plain one (set by a user) gets one of its parameters."""
        if isinstance(model_state, WithEMA):
            return model_state
        params = jax.tree.map(jnp.copy, super().params(model_state))  # a copy: the step donates both
        return WithEMA(model_state, params, jnp.zeros((), jnp.int32))

    def init_model(self, model_config, exmp_input, seed: int) -> WithEMA:
        return self._with_ema(super().init_model(model_config, exmp_input, seed))

    def init_train_state(self, model_state, tx) -> WithEMA:
        model_state = self._with_ema(model_state)
        ema = jax.tree.map(jnp.copy, model_state.params)  # the model state stays usable after the first donation
        return WithEMA(super().init_train_state(model_state.base, tx), ema, jnp.copy(model_state.step))

    def model_state(self, state):
        if not isinstance(state, WithEMA):
            return super().model_state(state)
        return WithEMA(super().model_state(state.base), state.params, state.step)

    def opt_state(self, state):
        return super().opt_state(state.base if isinstance(state, WithEMA) else state)

    def params(self, model_state) -> Any:
        return super().params(model_state.base if isinstance(model_state, WithEMA) else model_state)

    def eval_weights(self, model_state):
        """The model state validation, test, predict and ``bind`` use: the average when ``use_for_eval``."""
        if not isinstance(model_state, WithEMA):
            return model_state
        if not self.ema_config.use_for_eval:
            return model_state.base
        return super().with_params(model_state.base, model_state.params)

    # ----------------------------------------------------------------- steps
    def train_step(self, state: WithEMA, batch, **loss_kwargs):
        base, loss, metrics, grads = super().train_step(state.base, batch, **loss_kwargs)
        step = state.step + 1
        params = super().params(super().model_state(base))  # the backend's own states: its own methods
        cfg = self.ema_config
        ema = ema_update(state.params, params, step, cfg.decay, cfg.start_step)
        return WithEMA(base, ema, step), loss, metrics, grads

    def eval_step(self, model_state, batch, **loss_kwargs):
        return super().eval_step(self.eval_weights(model_state), batch, **loss_kwargs)

    def bind(self, model_state):
        return super().bind(self.eval_weights(model_state))

    # ----------------------------------------------------------------- named trees (checkpoints)
    def state_dict(self, state) -> dict:
        if not isinstance(state, WithEMA):
            return super().state_dict(state)
        tree = super().state_dict(state.base)
        return {**tree, MODEL: self._add_ema(tree[MODEL], state)}

    def load_state_dict(self, state, tree: dict):
        if not isinstance(state, WithEMA):
            return super().load_state_dict(state, tree)
        own, ema = self._split_ema(tree[MODEL])
        base = super().load_state_dict(state.base, {**tree, MODEL: own})
        return WithEMA(base, _params_from(state.params, ema["params"]), ema["step"])

    def model_state_dict(self, model_state) -> dict:
        if not isinstance(model_state, WithEMA):
            return super().model_state_dict(model_state)
        return self._add_ema(super().model_state_dict(model_state.base), model_state)

    def load_model_state_dict(self, model_state, tree: dict):
        if not isinstance(model_state, WithEMA):
            return super().load_model_state_dict(model_state, tree)
        own, ema = self._split_ema(tree)
        base = super().load_model_state_dict(model_state.base, own)
        return WithEMA(base, _params_from(model_state.params, ema["params"]), ema["step"])

    def _add_ema(self, model_tree: dict, state: WithEMA) -> dict:
        if EMA in model_tree:
            raise InputError(f"trainer.ema: the model's state already has an entry named {EMA!r} for the average.")
        return {**model_tree, EMA: {"params": _params_tree(state.params), "step": state.step}}

    @staticmethod
    def _split_ema(model_tree: dict) -> tuple[dict, dict]:
        return {k: v for k, v in model_tree.items() if k != EMA}, model_tree[EMA]


def _params_tree(params) -> dict:
    """Parameters as nested dicts by their path names (``l1/kernel``, the same for linen and nnx)."""
    tree: dict = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        *parents, last = path_names(path)
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


def _params_from(template, tree: dict):
    """Inverse of :func:`_params_tree` into the structure of ``template``."""

    def value(path, _):
        node = tree
        for part in path_names(path):
            node = node[part]
        return node

    return jax.tree_util.tree_map_with_path(value, template)
