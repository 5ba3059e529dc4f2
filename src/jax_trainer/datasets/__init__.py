"""Batch types, the resumable loader (rows in memory or on disk, optional prefetch threads) and the built-in
datasets (all offline)."""

from jax_trainer.datasets.array import ArrayDataset, ArrayDatasetConfig
from jax_trainer.datasets.batch import SupervisedBatch
from jax_trainer.datasets.cifar import CIFAR10Config, CIFAR10Dataset
from jax_trainer.datasets.in_memory import InMemoryDataset
from jax_trainer.datasets.interfaces import DatasetConfig, DatasetInterface, DatasetSplits
from jax_trainer.datasets.loader import NumpyLoader
from jax_trainer.datasets.mnist import MNISTConfig, MNISTDataset
from jax_trainer.datasets.npy_shards import NpyShardsConfig, NpyShardsDataset, write_npy_shards
from jax_trainer.datasets.sources import ConcatRows, FileRows, RowSource
from jax_trainer.datasets.sklearn_datasets import DiabetesConfig, DiabetesDataset, DigitsConfig, DigitsDataset

__all__ = [
    "ArrayDataset",
    "ArrayDatasetConfig",
    "CIFAR10Config",
    "CIFAR10Dataset",
    "ConcatRows",
    "DatasetConfig",
    "DatasetInterface",
    "DatasetSplits",
    "DiabetesConfig",
    "DiabetesDataset",
    "DigitsConfig",
    "DigitsDataset",
    "FileRows",
    "InMemoryDataset",
    "MNISTConfig",
    "MNISTDataset",
    "NpyShardsConfig",
    "NpyShardsDataset",
    "NumpyLoader",
    "RowSource",
    "SupervisedBatch",
    "write_npy_shards",
]
