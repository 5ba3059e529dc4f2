"""The backend-free training loop and the built-in task trainers."""

from jax_trainer.trainer.config import TrainerConfig, TrainerInterface
from jax_trainer.trainer.tasks import (
    ImgClassifierTrainer,
    ImgClassifierTrainerConfig,
    OutputLossTrainer,
    RegressionTrainer,
    RegressionTrainerConfig,
)
from jax_trainer.trainer.trainer_module import TrainerModule

__all__ = [
    "ImgClassifierTrainer",
    "ImgClassifierTrainerConfig",
    "OutputLossTrainer",
    "RegressionTrainer",
    "RegressionTrainerConfig",
    "TrainerConfig",
    "TrainerInterface",
    "TrainerModule",
]
