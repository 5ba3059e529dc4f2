"""The backend protocol: everything the backend-free loop needs from a model framework (flax.linen, flax.nnx, ...).

A backend turns a model config into state, wraps the user's loss hook into pure train and eval steps (the loop jits
them), converts state to and from named array trees for checkpoints, and binds a model for inference. It owns the
model contract: which user hook it calls (``loss_function`` for nnx, ``loss_function_linen`` for linen) and how a
trainer that only writes ``output_loss(outputs, batch)`` is served (:meth:`Backend.default_loss`). The loop never
touches a framework object directly.

State trees (:meth:`Backend.state_dict`) are dicts keyed by name, never by position: the model (weights and mutable
collections) under ``"model"`` (:data:`MODEL`), the optimizer under ``"optimizer"`` (``step``, ``opt_state``), and
whatever else the backend keeps (linen: ``rng``). Checkpoints store exactly this tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

from jax_trainer.checkpoint.store import MODEL
from jax_trainer.errors import InputError
from jax_trainer.precision import StepPrecision

PyTree = Any
OPTIMIZER = "optimizer"
# XLA options for a program that runs once (model init): without the backend's (LLVM's) optimization passes it
# compiles about 3x faster on CPU (MLP-digits' linen init: 0.5 s of CPU instead of 1.7 s under load), and it runs once.
RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 0}


class Backend(ABC):
    """One model framework behind the trainer. ``hooks`` is the trainer: it supplies the user's hooks (loss
    functions, ``batch_to_input``); it may be None for a backend used only to build and convert state.
    ``precision`` (``trainer.precision`` and ``trainer.remat``): the steps differentiate
    ``self.precision.wrap(loss)`` and evaluate ``self.precision.wrap(loss, differentiated=False)``."""

    name: ClassVar[str]
    model_interface: ClassVar[type]  # the compoconf interface this backend's models register under

    def __init__(self, hooks=None, precision: StepPrecision | None = None):
        self.hooks = hooks
        self.precision = precision or StepPrecision()

    @abstractmethod
    def init_model(self, model_config, exmp_input, seed: int) -> PyTree:
        """Build and initialise the model; returns its state (parameters and mutable collections)."""

    @abstractmethod
    def init_train_state(self, model_state: PyTree, tx) -> PyTree:
        """Model state + optax transformation → the train state the steps donate and return."""

    @abstractmethod
    def train_step(self, state: PyTree, batch, **loss_kwargs) -> tuple[PyTree, Any, dict, PyTree]:
        """One optimisation step (pure, jittable): ``(state, batch) -> (state, loss, metrics, grads)``.

        ``loss_kwargs`` (value policies) are passed to the user's loss hook as keyword arguments.
        """

    @abstractmethod
    def eval_step(self, model_state: PyTree, batch, **loss_kwargs) -> tuple[Any, dict]:
        """Loss and metrics of a model state in eval mode (pure, jittable): no dropout, running statistics."""

    def default_loss(self, *hook_args, train: bool = True, **loss_kwargs):
        """What the backend's user loss hook returns when the trainer writes only ``output_loss(outputs, batch)``:
        the backend applies the model and wraps the result in its hook's return shape."""
        raise NotImplementedError(f"The {self.name} backend calls the trainer's own loss hook; define it.")

    def partition_annotations(self) -> dict[str, tuple]:
        """The layouts the model declared for its arrays (``nnx.with_partitioning``, linen ``nn.with_partitioning``
        or logical names): one mesh-axis or logical name (or None) per dimension, by parameter path (``l1/kernel``,
        as :meth:`params` keys them; other collections with their name first). Read at :meth:`init_model`; {} for
        a model that declares none (``trainer.sharding_rules`` and the fsdp default then decide)."""
        return {}

    @abstractmethod
    def opt_state(self, state: PyTree) -> PyTree:
        """The optax state inside the train state (to read the learning rate)."""

    @abstractmethod
    def params(self, model_state: PyTree) -> PyTree:
        """The trainable parameters of a model state, keyed as the optimizer sees them (the paths WeightDecay matches,
        ``l1/kernel``): what the model summary counts."""

    def with_params(self, model_state: PyTree, params: PyTree) -> PyTree:
        """A copy of ``model_state`` whose trainable parameters are ``params`` (the structure :meth:`params` gives):
        how ``trainer.ema.use_for_eval`` evaluates the averaged weights. Optional: without it ``trainer.ema`` is
        refused for this backend."""
        raise NotImplementedError(f"The {self.name} backend cannot replace a model's parameters.")

    @abstractmethod
    def model_state(self, state: PyTree) -> PyTree:
        """The model part (parameters and mutable collections) of a train state."""

    @abstractmethod
    def state_dict(self, state: PyTree) -> dict:
        """Train state → named tree of arrays: ``{"model": model_state_dict(model_state(state)), "optimizer": ...}``."""

    @abstractmethod
    def load_state_dict(self, state: PyTree, tree: dict) -> PyTree:
        """Inverse of :meth:`state_dict`: ``state`` gives the structure, ``tree`` the values."""

    @abstractmethod
    def model_state_dict(self, model_state: PyTree) -> dict:
        """Model state → tree of arrays (the ``"model"`` entry of :meth:`state_dict`)."""

    @abstractmethod
    def load_model_state_dict(self, model_state: PyTree, tree: dict) -> PyTree:
        """Inverse of :meth:`model_state_dict`."""

    @abstractmethod
    def bind(self, model_state: PyTree) -> Callable[[Any], Any]:
        """A callable ``inputs -> outputs`` in eval mode, for inference."""


def check_loss_output(output, hook: str, expected: str, is_valid: Callable[[Any], bool]):
    """Fail at trace time with a message naming the hook and the expected shape of its return value."""
    if not is_valid(output):
        got = type(output).__name__
        if isinstance(output, tuple):
            got = f"a tuple of length {len(output)}"
        elif hasattr(output, "shape"):
            got = f"an array of shape {tuple(output.shape)}"
        raise TypeError(f"{hook} must return {expected}; got {got}.")
    return output


def instantiate_model(model_config, interface, backend: str, hint: str = "", **kwargs):
    """``model_config.instantiate(interface, **kwargs)``, with an error naming the backend when the model has no
    implementation registered for it."""
    try:
        return model_config.instantiate(interface, **kwargs)
    except KeyError as err:
        raise InputError(
            f"model.class_name: {model_config.class_name!r} has no {backend} implementation "
            f"(it is not registered under {interface.__name__}){hint}."
        ) from err
