"""A trainer of your own: cross-entropy with label smoothing, written once per backend.

``loss_function`` is the nnx hook (it gets the model), ``loss_function_linen`` the linen hook (parameters, mutable
state, an rng); the trainer calls the one of ``trainer.model_mode``. A loss that needs only the model's outputs can
be written once as ``output_loss(outputs, batch)`` instead (README, "Writing a trainer").
"""

from dataclasses import dataclass

import jax
import optax
from compoconf import register

from jax_trainer.trainer import TrainerConfig, TrainerModule


@dataclass
class SmoothingTrainerConfig(TrainerConfig):
    """``smoothing``: the probability mass spread evenly over all classes; ``num_classes``: the width of the logits."""

    smoothing: float = 0.1
    num_classes: int = 10

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"trainer.smoothing: must be in [0, 1), got {self.smoothing}")


@register
class SmoothingTrainer(TrainerModule):
    """Label-smoothed cross-entropy; logs accuracy and the plain (unsmoothed) cross-entropy."""

    config: SmoothingTrainerConfig

    def _loss(self, logits: jax.Array, labels: jax.Array):
        targets = optax.smooth_labels(jax.nn.one_hot(labels, self.config.num_classes), self.config.smoothing)
        loss = optax.softmax_cross_entropy(logits, targets).mean()
        metrics = {
            "acc": (logits.argmax(-1) == labels).mean(),
            "nll": optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(),
        }
        return loss, metrics

    def loss_function(self, model, batch, train: bool = True, **loss_kwargs):  # nnx
        logits = self.model_apply(model, self.batch_to_input(batch), train)
        return self._loss(logits, batch.target)

    def loss_function_linen(self, params, state, batch, rng, train: bool = True, **loss_kwargs):  # linen
        logits, mutables = self.model_linen_apply(params, state, self.batch_to_input(batch), rng, train)
        loss, metrics = self._loss(logits, batch.target)
        return loss, (mutables, metrics)
