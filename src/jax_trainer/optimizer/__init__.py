"""Optimizers, learning-rate schedules and gradient transforms (optax underneath), configured by compoconf."""

from .builder import OptimizerBundle, build_optimizer, current_learning_rate
from .interfaces import OptimizerInterface, ScheduleInterface, TransformInterface
from .optimizers import SGD, Adam, AdamConfig, AdamW, AdamWConfig, Lamb, LambConfig, SGDConfig
from .paths import param_path, param_paths
from .schedules import (
    ConcatSchedule,
    ConcatScheduleConfig,
    ConstantSchedule,
    ConstantScheduleConfig,
    CosineSchedule,
    CosineScheduleConfig,
    ExponentialSchedule,
    ExponentialScheduleConfig,
    LinearSchedule,
    LinearScheduleConfig,
    WarmupCosineDecaySchedule,
    WarmupCosineDecayScheduleConfig,
    build_schedule,
)
from .transforms import (
    GradClipNorm,
    GradClipNormConfig,
    GradClipValue,
    GradClipValueConfig,
    WeightDecay,
    WeightDecayConfig,
)

__all__ = [
    "Adam",
    "AdamConfig",
    "AdamW",
    "AdamWConfig",
    "ConcatSchedule",
    "ConcatScheduleConfig",
    "ConstantSchedule",
    "ConstantScheduleConfig",
    "CosineSchedule",
    "CosineScheduleConfig",
    "ExponentialSchedule",
    "ExponentialScheduleConfig",
    "GradClipNorm",
    "GradClipNormConfig",
    "GradClipValue",
    "GradClipValueConfig",
    "Lamb",
    "LambConfig",
    "LinearSchedule",
    "LinearScheduleConfig",
    "OptimizerBundle",
    "OptimizerInterface",
    "SGD",
    "SGDConfig",
    "ScheduleInterface",
    "TransformInterface",
    "WarmupCosineDecaySchedule",
    "WarmupCosineDecayScheduleConfig",
    "WeightDecay",
    "WeightDecayConfig",
    "build_optimizer",
    "build_schedule",
    "current_learning_rate",
    "param_path",
    "param_paths",
]
