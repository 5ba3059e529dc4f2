"""flax.nnx implementations of the zoo models (registered under ``BaseModelNNX``)."""

from jax_trainer.zoo.nnx.cnn import CNNClassifier
from jax_trainer.zoo.nnx.mlp import MLPClassifier, MLPRegressor

__all__ = ["CNNClassifier", "MLPClassifier", "MLPRegressor"]
