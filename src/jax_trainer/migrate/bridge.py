"""Run an unchanged linen model under the nnx backend through flax's ``nnx.bridge``.

``model: {class_name: LinenBridge, linen: {class_name: CNNClassifier, ...}}`` with ``model_mode: nnx`` (and
``imports: [jax_trainer.migrate.bridge]``) trains any model registered under ``BaseModelLinen`` with the nnx
backend: the first step of a migration, before any code is ported. Parameters become ``nnx.Param`` and
``batch_stats`` become ``nnx.BatchStat`` under ``linen/`` (``linen/conv1/kernel``); ``model.train()`` and
``model.eval()`` switch the linen ``train`` argument, and dropout draws from the model's ``dropout`` rng
stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from compoconf import ConfigInterface, register
from flax import nnx

from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX


@dataclass
class LinenBridgeConfig(ConfigInterface):
    """``linen``: the config of a linen model (anything registered under ``BaseModelLinen``)."""

    linen: BaseModelLinen.cfgtype = None

    def __post_init__(self):
        if self.linen is None:
            raise ValueError("linen: the config of the linen model to wrap is required")

    def __hash__(self) -> int:  # lives in the nnx graphdef, which jax hashes as static data
        return hash(repr(self))


@register
class LinenBridge(nnx.Module, BaseModelNNX):
    """A linen module as an nnx module; called as ``model(x)`` like any nnx model of the trainer."""

    config: LinenBridgeConfig

    def __init__(self, config: LinenBridgeConfig, *, rngs: nnx.Rngs, exmp_input):
        self.config = config
        self.deterministic = True  # set by model.train() / model.eval(), like nnx.Dropout's
        module = config.linen.instantiate(BaseModelLinen)
        streams = nnx.Rngs(params=rngs.params(), dropout=rngs.dropout())
        self.linen = nnx.bridge.ToNNX(module, rngs=streams)
        nnx.bridge.lazy_init(self.linen, exmp_input, train=False)

    def __call__(self, x: jax.Array) -> jax.Array:
        train = not self.deterministic
        return self.linen(x, train=train, mutable=["batch_stats"] if train else False)
