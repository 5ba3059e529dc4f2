"""A model's own layout declarations reach the train state (issue 13): ``nnx.with_partitioning`` and linen's logical
names (through ``trainer.logical_axis_rules``) give the parameter its spec, and the optimizer state follows its
parameter. One device, a mesh of size-1 axes: the specs are what is checked, and one train step runs on them."""

from dataclasses import dataclass

import flax.linen as nn
import jax
import numpy as np
from compoconf import ConfigInterface, register
from flax import nnx
from jax.sharding import PartitionSpec as P

from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX
from trainer_helpers import classifier, digits_splits


@dataclass
class AnnotatedNNXConfig(ConfigInterface):
    num_classes: int = 10


@dataclass
class AnnotatedLinenConfig(ConfigInterface):
    num_classes: int = 10


@register
class AnnotatedNNX(nnx.Module, BaseModelNNX):
    config: AnnotatedNNXConfig

    def __init__(self, config, *, rngs, exmp_input):
        init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "tensor"))
        self.l1 = nnx.Linear(int(np.prod(exmp_input.shape[1:])), 32, kernel_init=init, rngs=rngs)
        self.head = nnx.Linear(32, config.num_classes, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.l1(x.reshape(x.shape[0], -1))))


@register
class AnnotatedLinen(nn.Module, BaseModelLinen):
    config: AnnotatedLinenConfig

    @nn.compact
    def __call__(self, x, train: bool = False):
        init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp"))
        x = jax.nn.relu(nn.Dense(32, kernel_init=init, name="l1")(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.config.num_classes, name="head")(x)


def _specs(trainer) -> dict:
    from jax_trainer.optimizer import param_path  # pylint: disable=import-outside-toplevel

    leaves = jax.tree_util.tree_flatten_with_path(trainer.state)[0]
    return {param_path(path): leaf.sharding.spec for path, leaf in leaves if hasattr(leaf, "sharding")}


def _check(trainer):
    trainer.init_optimizer(1, 10)  # the train state as placed (a size-1 axis may read P() once computed on)
    specs = _specs(trainer)
    kernels = {path: spec for path, spec in specs.items() if path.endswith("l1/kernel")}
    assert len(kernels) >= 3, kernels  # the parameter and the optimizer's two moments of it
    assert set(kernels.values()) == {P(None, "tensor")}, kernels
    assert all(spec == P() for path, spec in specs.items() if path.endswith("head/kernel")), specs
    splits = digits_splits(batch_size=32)
    assert trainer.train_model(splits.train, splits.val)[1]["val/acc"] > 0  # and it trains on that layout


def test_nnx_with_partitioning_lays_out_the_parameter_and_its_optimizer_state(tmp_path):
    trainer = classifier("nnx", tmp_path / "run", model=AnnotatedNNXConfig(), mesh={"data": -1, "tensor": 1},
                         splits=digits_splits(batch_size=32), max_steps=2)
    _check(trainer)


def test_linen_logical_names_map_through_the_logical_axis_rules(tmp_path):
    trainer = classifier("linen", tmp_path / "run", model=AnnotatedLinenConfig(), mesh={"data": -1, "tensor": 1},
                         logical_axis_rules=[["embed", None], ["mlp", "tensor"]],
                         splits=digits_splits(batch_size=32), max_steps=2)
    _check(trainer)
