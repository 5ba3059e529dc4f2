"""Optimizers configured by compoconf: the update rule of each; ``builder`` adds schedules and transforms.

``learning_rate`` is a float or a schedule config; ``transforms`` maps a name to a transform config,
chained in the given order before or after the optimizer (see ``transforms``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optax
from compoconf import ConfigInterface, register

from jax_trainer.value_checks import check_rate

from .interfaces import OptimizerInterface, ScheduleInterface, TransformInterface
from .transforms import WeightDecay, WeightDecayConfig


def _own_weight_decay(weight_decay: float | WeightDecayConfig) -> WeightDecay | None:
    """A float decays every parameter (as optax.adamw and torch.optim.AdamW do); a config selects by path."""
    if not isinstance(weight_decay, WeightDecayConfig):
        weight_decay = WeightDecayConfig(value=float(weight_decay), parameter_regex_include=None)
    return WeightDecay(weight_decay) if weight_decay.value > 0 else None


def _check_learning_rate(config: ConfigInterface) -> None:
    """A float ``learning_rate`` must be finite and >= 0 (a schedule config checks its own values)."""
    if isinstance(config.learning_rate, (int, float)):
        check_rate(f"{type(config).__name__.removesuffix('Config')}.learning_rate", config.learning_rate)


def _decay_args(decay: WeightDecay | None) -> dict[str, Any]:
    if decay is None:
        return {"weight_decay": 0.0, "mask": None}
    return {"weight_decay": decay.config.value, "mask": decay.mask}


@dataclass
class AdamWConfig(ConfigInterface):
    learning_rate: float | ScheduleInterface.cfgtype = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    nesterov: bool = False
    weight_decay: float | WeightDecayConfig = 0.0
    transforms: dict[str, TransformInterface.cfgtype] = field(default_factory=dict)

    def __post_init__(self):
        _check_learning_rate(self)


@register
class AdamW(OptimizerInterface):
    """Adam with decoupled weight decay (``weight_decay``: a float for all parameters, or a WeightDecay)."""

    config: AdamWConfig

    def weight_decay(self) -> WeightDecay | None:
        return _own_weight_decay(self.config.weight_decay)

    def update_rule(self, learning_rate: Any, decoupled_decay: WeightDecay | None) -> optax.GradientTransformation:
        cfg = self.config
        return optax.adamw(
            learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, nesterov=cfg.nesterov, **_decay_args(decoupled_decay)
        )


@dataclass
class AdamConfig(ConfigInterface):
    learning_rate: float | ScheduleInterface.cfgtype = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    nesterov: bool = False
    transforms: dict[str, TransformInterface.cfgtype] = field(default_factory=dict)

    def __post_init__(self):
        _check_learning_rate(self)


@register
class Adam(OptimizerInterface):
    """Adam; weight decay, if wanted, goes in ``transforms`` as a WeightDecay."""

    config: AdamConfig

    def update_rule(self, learning_rate: Any, decoupled_decay: WeightDecay | None) -> optax.GradientTransformation:
        cfg = self.config
        return optax.adam(learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, nesterov=cfg.nesterov)


@dataclass
class SGDConfig(ConfigInterface):
    learning_rate: float | ScheduleInterface.cfgtype = 1e-3
    momentum: float | None = None
    nesterov: bool = False
    transforms: dict[str, TransformInterface.cfgtype] = field(default_factory=dict)

    def __post_init__(self):
        _check_learning_rate(self)


@register
class SGD(OptimizerInterface):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    config: SGDConfig

    def update_rule(self, learning_rate: Any, decoupled_decay: WeightDecay | None) -> optax.GradientTransformation:
        return optax.sgd(learning_rate, momentum=self.config.momentum, nesterov=self.config.nesterov)


@dataclass
class LambConfig(ConfigInterface):
    learning_rate: float | ScheduleInterface.cfgtype = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-6
    eps_root: float = 0.0
    weight_decay: float | WeightDecayConfig = 0.0
    transforms: dict[str, TransformInterface.cfgtype] = field(default_factory=dict)

    def __post_init__(self):
        _check_learning_rate(self)


@register
class Lamb(OptimizerInterface):
    """LAMB; its own weight decay enters the layer-wise trust ratio, as in optax.lamb."""

    config: LambConfig

    def weight_decay(self) -> WeightDecay | None:
        return _own_weight_decay(self.config.weight_decay)

    def update_rule(self, learning_rate: Any, decoupled_decay: WeightDecay | None) -> optax.GradientTransformation:
        cfg = self.config
        return optax.lamb(
            learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, eps_root=cfg.eps_root, **_decay_args(decoupled_decay)
        )
