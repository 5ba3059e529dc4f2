"""Gradient transforms: weight decay on selected parameter paths and gradient clipping.

``before_optimizer=True`` chains a transform before the optimizer, where it acts on the gradients;
``False`` chains it after, where it acts on the (learning-rate scaled, sign-flipped) updates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import jax
import optax
from compoconf import ConfigInterface, register

from jax_trainer.value_checks import check_positive

from .interfaces import TransformInterface
from .paths import param_path

DEFAULT_DECAY_INCLUDE = "((.*weight$)|(.*kernel$))"


@dataclass
class WeightDecayConfig(ConfigInterface):
    value: float = 0.0
    mode: Literal["whitelist", "blacklist"] = "whitelist"
    parameter_regex_include: str | None = DEFAULT_DECAY_INCLUDE
    parameter_regex_exclude: str | None = None
    before_optimizer: bool = False

    def __post_init__(self):
        if self.mode not in ("whitelist", "blacklist"):
            raise ValueError(f"WeightDecay.mode must be 'whitelist' or 'blacklist', got {self.mode!r}")
        if self.value < 0:
            raise ValueError(f"WeightDecay.value must be >= 0, got {self.value}")
        for name in ("parameter_regex_include", "parameter_regex_exclude"):
            try:
                re.compile(getattr(self, name) or "")
            except re.error as err:
                raise ValueError(f"WeightDecay.{name} is not a valid regex: {err}") from err


@register
class WeightDecay(TransformInterface):
    """Weight decay ``value * param`` on the parameters selected by path; never part of the loss.

    Paths are ``'/'``-joined names relative to the optimized tree (``l1/kernel``, ``layers/0/bias``;
    see ``paths.param_path``), identical for linen and nnx. Regexes use ``re.match`` (anchored at the
    start); an empty or missing regex matches nothing for exclude and everything for include.

    - ``whitelist``: decay a parameter iff ``parameter_regex_include`` matches and
      ``parameter_regex_exclude`` does not. The default include picks ``*kernel`` / ``*weight``
      leaves, so biases, norm scales and embeddings are not decayed.
    - ``blacklist``: decay every parameter except those matching ``parameter_regex_exclude``;
      ``parameter_regex_include`` is not consulted.

    ``before_optimizer=False`` (default) is decoupled decay: after the optimizer, every selected
    parameter moves by ``-lr * value * param`` with the current learning rate, as in AdamW.
    ``before_optimizer=True`` adds ``value * param`` to the gradients, which the optimizer then
    rescales (L2-style coupling; for plain SGD the two are the same).
    """

    config: WeightDecayConfig

    def __init__(self, config: WeightDecayConfig):
        super().__init__(config)
        self._include = re.compile(config.parameter_regex_include) if config.parameter_regex_include else None
        self._exclude = re.compile(config.parameter_regex_exclude) if config.parameter_regex_exclude else None

    def decays(self, path: str) -> bool:
        """Whether the parameter at ``path`` is decayed."""
        if self._exclude is not None and self._exclude.match(path):
            return False
        if self.config.mode == "blacklist" or self._include is None:
            return True
        return self._include.match(path) is not None

    def mask(self, params: Any) -> Any:
        """A tree of bools shaped like ``params``: True where the parameter is decayed."""
        return jax.tree_util.tree_map_with_path(lambda key_path, _: self.decays(param_path(key_path)), params)

    def build(self, learning_rate: Any) -> optax.GradientTransformation:
        scale = self.config.value if self.config.before_optimizer else -learning_rate * self.config.value
        return optax.add_decayed_weights(scale, mask=self.mask)


@dataclass
class GradClipNormConfig(ConfigInterface):
    max_norm: float
    before_optimizer: bool = True

    def __post_init__(self):
        check_positive("GradClipNorm.max_norm", self.max_norm)


@register
class GradClipNorm(TransformInterface):
    """Rescales the whole tree so that its global L2 norm is at most ``max_norm``."""

    config: GradClipNormConfig

    def build(self, learning_rate: Any) -> optax.GradientTransformation:
        return optax.clip_by_global_norm(self.config.max_norm)


@dataclass
class GradClipValueConfig(ConfigInterface):
    max_delta: float
    before_optimizer: bool = True

    def __post_init__(self):
        check_positive("GradClipValue.max_delta", self.max_delta)


@register
class GradClipValue(TransformInterface):
    """Clips every element to ``[-max_delta, max_delta]``."""

    config: GradClipValueConfig

    def build(self, learning_rate: Any) -> optax.GradientTransformation:
        return optax.clip(self.config.max_delta)
