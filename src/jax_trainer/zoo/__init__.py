"""Reference models, each in linen and nnx with identical math and one shared config.

Importing this package registers both forms, so ``class_name: MLPClassifier`` resolves under
``BaseModelLinen`` and ``BaseModelNNX`` alike.
"""

from jax_trainer.zoo import linen, nnx
from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX
from jax_trainer.zoo.configs import CNNClassifierConfig, MLPClassifierConfig, MLPRegressorConfig

__all__ = [
    "BaseModelLinen",
    "BaseModelNNX",
    "CNNClassifierConfig",
    "MLPClassifierConfig",
    "MLPRegressorConfig",
    "linen",
    "nnx",
]
