"""Hyperparameter search with optuna: the ``tune:`` config section and the ``jax-trainer tune`` command.

Importing this package imports neither optuna nor jax; ``jax_trainer.tune.study`` needs optuna
(``pip install jax_trainer[tune]``).
"""

from jax_trainer.tune.config import DistributionConfig, PrunerConfig, SamplerConfig, TuneConfig

__all__ = ["DistributionConfig", "PrunerConfig", "SamplerConfig", "TuneConfig"]
