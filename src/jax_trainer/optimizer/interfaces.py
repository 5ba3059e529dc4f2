"""Compoconf registries for optimizers, learning-rate schedules and gradient transforms.

YAML names an implementation by ``class_name``; fields typed ``<Interface>.cfgtype`` accept any
registered config of that registry, including ones that users register themselves.
"""

from __future__ import annotations

from typing import Any

import optax
from compoconf import RegistrableConfigInterface, register_interface


@register_interface
class ScheduleInterface(RegistrableConfigInterface):
    """A learning-rate schedule; ``build`` turns its config into an optax schedule."""

    def __init__(self, config: Any):
        self.config = config

    def build(self, total_steps: int | None) -> optax.Schedule:
        """Returns ``step -> value``; a length left out of the config is taken from ``total_steps``."""
        raise NotImplementedError


@register_interface
class TransformInterface(RegistrableConfigInterface):
    """A gradient transform chained before (on gradients) or after (on updates) the optimizer."""

    def __init__(self, config: Any):
        self.config = config

    @property
    def before_optimizer(self) -> bool:
        return self.config.before_optimizer

    def build(self, learning_rate: Any) -> optax.GradientTransformation:
        """Returns the optax transform; ``learning_rate`` is the current (traced) learning rate."""
        raise NotImplementedError


@register_interface
class OptimizerInterface(RegistrableConfigInterface):
    """An optimizer: its own update rule; schedules and transforms are assembled by ``build_optimizer``."""

    def __init__(self, config: Any):
        self.config = config

    def weight_decay(self) -> Any:
        """The optimizer's own weight decay as a ``WeightDecay`` transform, or None when it has none."""
        return None

    def update_rule(self, learning_rate: Any, decoupled_decay: Any) -> optax.GradientTransformation:
        """The optax optimizer at ``learning_rate`` with ``decoupled_decay`` (a WeightDecay or None) built in."""
        raise NotImplementedError
