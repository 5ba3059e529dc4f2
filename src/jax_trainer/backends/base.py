"""The backend protocol: everything the backend-free loop needs from flax.linen or flax.nnx.

A backend turns a model config into state, wraps the user's loss function into pure train and eval
steps (the loop jits them), converts state to and from plain array trees for checkpoints, and binds a
model for inference. The loop never touches a linen or nnx object directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

PyTree = Any


class Backend(ABC):
    """One model framework behind the trainer. ``trainer`` supplies the user's hooks (loss functions)."""

    name: ClassVar[str]
    model_interface: ClassVar[type]  # the compoconf interface this backend's models register under

    def __init__(self, trainer):
        self.trainer = trainer

    @abstractmethod
    def init_model(self, model_config, exmp_input, seed: int) -> PyTree:
        """Build and initialise the model; returns its state (parameters and mutable collections)."""

    @abstractmethod
    def init_train_state(self, model_state: PyTree, tx) -> PyTree:
        """Model state + optax transformation → the train state the steps donate and return."""

    @abstractmethod
    def train_step(self, state: PyTree, batch, **loss_kwargs) -> tuple[PyTree, Any, dict, PyTree]:
        """One optimisation step (pure, jittable): ``(state, batch) -> (state, loss, metrics, grads)``.

        ``loss_kwargs`` (value policies) are passed to the user's loss function as keyword arguments.
        """

    @abstractmethod
    def eval_step(self, state: PyTree, batch, **loss_kwargs) -> tuple[Any, dict]:
        """Loss and metrics of a *model* state in eval mode (pure, jittable): no dropout, running statistics."""

    @abstractmethod
    def opt_state(self, state: PyTree) -> PyTree:
        """The optax state inside the train state (to read the learning rate)."""

    @abstractmethod
    def params(self, state: PyTree) -> PyTree:
        """The trainable parameters of a train or model state."""

    @abstractmethod
    def model_state(self, state: PyTree) -> PyTree:
        """The model part (parameters and mutable collections) of a train state."""

    @abstractmethod
    def state_dict(self, state: PyTree) -> dict:
        """Train or model state → nested dict of plain arrays (what checkpoints store)."""

    @abstractmethod
    def load_state_dict(self, state: PyTree, tree: dict) -> PyTree:
        """Inverse of :meth:`state_dict`: ``state`` gives the structure, ``tree`` the values."""

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
