"""flax.linen implementations of the zoo models (registered under ``BaseModelLinen``)."""

from jax_trainer.zoo.linen.cnn import CNNClassifier
from jax_trainer.zoo.linen.mlp import MLPClassifier, MLPRegressor

__all__ = ["CNNClassifier", "MLPClassifier", "MLPRegressor"]
