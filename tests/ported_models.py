"""kpoeppel/jax_trainer's test models (tests/models/networks/simple_cnn.py, simple_cnn_linien.py), ported.

Kept as written there: ``config_class =`` on the nnx model, its ``__init__(self, config, rngs)`` without
``exmp_input`` (layer sizes fixed for 32x32x3 input), ``super().__init__(config)``, a ``train`` argument on
``__call__``, log-softmax outputs. Changed: the linen model also derives from ``nn.Module`` (the original's
``BaseModelLinen`` was a linen Module itself), the two config classes get distinct names (one module here), and the
multi-head LayerNorm (``mh_norm``, a vmapped linen LayerNorm bridged into nnx) is left out.
"""

from dataclasses import dataclass

from compoconf import ConfigInterface, register
from flax import linen as nn
from flax import nnx

from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX


@dataclass
class SimpleClassifierConfig(ConfigInterface):
    c_hid: int
    num_classes: int
    act_fn: str
    batch_norm: bool = True


@register
class SimpleClassifier(BaseModelNNX, nnx.Module):
    config_class = SimpleClassifierConfig

    def __init__(self, config: SimpleClassifierConfig, rngs: nnx.Rngs):
        super().__init__(config)
        self.config = config
        self.act_fn = getattr(nnx, self.config.act_fn)
        self.conv1 = nnx.Conv(in_features=3, out_features=config.c_hid, kernel_size=(3, 3), strides=2, rngs=rngs)
        if self.config.batch_norm:
            self.norm1 = nnx.BatchNorm(num_features=config.c_hid, rngs=rngs)
        self.head = nnx.Linear(in_features=16 * 16 * config.c_hid, out_features=config.num_classes, rngs=rngs)

    def __call__(self, x, train=True, **kwargs):
        x = self.conv1(x)  # 32x32 => 16x16
        if self.config.batch_norm:
            x = self.norm1(x)
        x = self.act_fn(x)
        x = x.reshape(x.shape[0], -1)
        return nnx.log_softmax(self.head(x))


@dataclass
class SimpleClassifierLinenConfig(ConfigInterface):
    c_hid: int
    num_classes: int
    act_fn: str
    batch_norm: bool = True


@register
class SimpleClassifierLinen(nn.Module, BaseModelLinen):
    config: SimpleClassifierLinenConfig

    def setup(self):
        self.act_fn = getattr(nn, self.config.act_fn)
        self.conv1 = nn.Conv(features=self.config.c_hid, kernel_size=(3, 3), strides=2)
        if self.config.batch_norm:
            self.norm1 = nn.BatchNorm()
        self.head = nn.Dense(features=self.config.num_classes)

    def __call__(self, x, train=True, **kwargs):
        x = self.conv1(x)
        if self.config.batch_norm:
            x = self.norm1(x, use_running_average=not train)
        x = self.act_fn(x)
        x = x.reshape(x.shape[0], -1)
        return nn.log_softmax(self.head(x))
