"""Value policies: scheduled values (e.g. a loss weight decaying per epoch) handed to the loss function.

``trainer.value_policies: {aux_weight: {class_name: ExponentialValuePolicy, init_value: 1.0, decay_rate: 0.5}}``
makes the loss function receive ``aux_weight=<scalar>`` as a keyword argument, in training and evaluation.
Values are computed on the host once per epoch and enter the compiled step as float32 arrays in its carry,
so a new value never triggers a recompilation. Epochs count from 1; the first epoch gets ``init_value``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional

import numpy as np
from compoconf import ConfigInterface, RegistrableConfigInterface, register, register_interface

RESERVED_NAMES = ("train",)


@register_interface
class ValuePolicyInterface(RegistrableConfigInterface):
    """Registry of value policies; YAML names them by ``class_name`` under ``trainer.value_policies``."""

    @abc.abstractmethod
    def value(self, epoch_idx: int) -> float:
        """The value for (1-based) epoch ``epoch_idx``; epoch 0 (evaluation before training) gives the first."""


def _elapsed(epoch_idx: int) -> int:
    return max(epoch_idx - 1, 0)


@dataclass
class ConstantValuePolicyConfig(ConfigInterface):
    value: float = 1.0


@register
class ConstantValuePolicy(ValuePolicyInterface):
    config: ConstantValuePolicyConfig

    def __init__(self, config: ConstantValuePolicyConfig):
        self.config = config

    def value(self, epoch_idx: int) -> float:
        return self.config.value


@dataclass
class ExponentialValuePolicyConfig(ConfigInterface):
    """``init_value * decay_rate ** (epoch - 1)``, never past ``end_value`` when one is given."""

    init_value: float = 1.0
    decay_rate: float = 0.5
    end_value: Optional[float] = None

    def __post_init__(self):
        if self.decay_rate <= 0:
            raise ValueError(f"decay_rate must be > 0, got {self.decay_rate}.")


@register
class ExponentialValuePolicy(ValuePolicyInterface):
    config: ExponentialValuePolicyConfig

    def __init__(self, config: ExponentialValuePolicyConfig):
        self.config = config

    def value(self, epoch_idx: int) -> float:
        cfg = self.config
        value = cfg.init_value * cfg.decay_rate ** _elapsed(epoch_idx)
        if cfg.end_value is None:
            return value
        return max(value, cfg.end_value) if cfg.decay_rate < 1 else min(value, cfg.end_value)


@dataclass
class LinearValuePolicyConfig(ConfigInterface):
    """From ``init_value`` in epoch 1 linearly to ``end_value`` in epoch ``1 + transition_epochs``, then constant."""

    init_value: float = 1.0
    end_value: float = 0.0
    transition_epochs: int = 1

    def __post_init__(self):
        if self.transition_epochs < 1:
            raise ValueError(f"transition_epochs must be >= 1, got {self.transition_epochs}.")


@register
class LinearValuePolicy(ValuePolicyInterface):
    config: LinearValuePolicyConfig

    def __init__(self, config: LinearValuePolicyConfig):
        self.config = config

    def value(self, epoch_idx: int) -> float:
        cfg = self.config
        frac = min(_elapsed(epoch_idx) / cfg.transition_epochs, 1.0)
        return cfg.init_value + frac * (cfg.end_value - cfg.init_value)


def check_policy_names(names) -> None:
    """Policy names become keyword arguments of the loss function: identifiers, not its own ``train``."""
    for name in names:
        if not name.isidentifier() or name in RESERVED_NAMES:
            raise ValueError(
                f"trainer.value_policies.{name}: a policy name must be a Python identifier other than "
                f"{RESERVED_NAMES} (it becomes a keyword argument of the loss function)."
            )


def policy_values(policies: dict[str, ValuePolicyInterface], epoch_idx: int) -> dict[str, np.ndarray]:
    """The policies' values for ``epoch_idx`` as float32 arrays (arrays, not Python floats: no recompiles)."""
    return {name: np.asarray(policy.value(epoch_idx), np.float32) for name, policy in policies.items()}
