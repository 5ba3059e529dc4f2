"""Batch types, the resumable in-memory loader and the built-in datasets (all offline)."""

from jax_trainer.datasets.array import ArrayDataset, ArrayDatasetConfig
from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.cifar import CIFAR10Config, CIFAR10Dataset
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig, DatasetInterface, DatasetSplits
from jax_trainer.datasets.loader import NumpyLoader
from jax_trainer.datasets.mnist import MNISTConfig, MNISTDataset
from jax_trainer.datasets.sklearn_datasets import DiabetesConfig, DiabetesDataset, DigitsConfig, DigitsDataset

__all__ = [
    "ArrayDataset",
    "ArrayDatasetConfig",
    "CIFAR10Config",
    "CIFAR10Dataset",
    "DatasetConfig",
    "DatasetInterface",
    "DatasetSplits",
    "DiabetesConfig",
    "DiabetesDataset",
    "DigitsConfig",
    "DigitsDataset",
    "InMemoryDataset",
    "MNISTConfig",
    "MNISTDataset",
    "NumpyLoader",
    "SupervisedBatch",
]
