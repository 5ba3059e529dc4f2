"""Callback base and the built-in callbacks (importing this module registers them for YAML)."""

from jax_trainer.callbacks.base import Callback, CallbackConfig, CallbackInterface
from jax_trainer.callbacks.checkpoint import ModelCheckpoint, ModelCheckpointConfig
from jax_trainer.callbacks.confusion_matrix import ConfusionMatrixCallback, ConfusionMatrixConfig
from jax_trainer.callbacks.disable_gc import DisableGC, DisableGCConfig
from jax_trainer.callbacks.early_stopping import EarlyStopping, EarlyStoppingConfig
from jax_trainer.callbacks.grad_spike import GradientSpikeMonitor, GradientSpikeMonitorConfig
from jax_trainer.callbacks.lr_monitor import LearningRateMonitor, LearningRateMonitorConfig
from jax_trainer.callbacks.profiler import JAXProfiler, JAXProfilerConfig
from jax_trainer.callbacks.step_extras import StepExtra, StepInfo
from jax_trainer.callbacks.value_policies import (
    ConstantValuePolicy,
    ConstantValuePolicyConfig,
    ExponentialValuePolicy,
    ExponentialValuePolicyConfig,
    LinearValuePolicy,
    LinearValuePolicyConfig,
    ValuePolicyInterface,
)

__all__ = [
    "Callback",
    "CallbackConfig",
    "CallbackInterface",
    "ConfusionMatrixCallback",
    "ConfusionMatrixConfig",
    "ConstantValuePolicy",
    "ConstantValuePolicyConfig",
    "DisableGC",
    "DisableGCConfig",
    "EarlyStopping",
    "EarlyStoppingConfig",
    "ExponentialValuePolicy",
    "ExponentialValuePolicyConfig",
    "GradientSpikeMonitor",
    "GradientSpikeMonitorConfig",
    "JAXProfiler",
    "JAXProfilerConfig",
    "LearningRateMonitor",
    "LearningRateMonitorConfig",
    "LinearValuePolicy",
    "LinearValuePolicyConfig",
    "ModelCheckpoint",
    "ModelCheckpointConfig",
    "StepExtra",
    "StepInfo",
    "ValuePolicyInterface",
]
