"""Trainer configuration: the ``trainer:`` block of the YAML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from compoconf import ConfigInterface, RegistrableConfigInterface, register_interface

from jax_trainer.callbacks.base import CallbackInterface
from jax_trainer.callbacks.value_policies import ValuePolicyInterface, check_policy_names
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.parallel.mesh import check_axes
from jax_trainer.parallel.rules import parse_logical_rules, parse_rules
from jax_trainer.parallel.runtime import DistributedConfig
from jax_trainer.precision import check_precision
from jax_trainer.registration import claim_config
from jax_trainer.remat import check_remat
from jax_trainer.trainer.ema import EMAConfig
from jax_trainer.trainer.final_test import check_test_ckpt
from jax_trainer.value_checks import check_seed


@register_interface
class TrainerInterface(RegistrableConfigInterface):
    """Registry of trainers; YAML picks one by ``trainer.class_name``."""

    def __init_subclass__(cls, **kwargs):
        """A subclass without a config class of its own gets one (``jax_trainer.registration``), so registering
        ``MyTrainer(ImgClassifierTrainer)`` keeps ``ImgClassifierTrainer`` registered."""
        super().__init_subclass__(**kwargs)
        claim_config(cls, (TrainerInterface,))


@dataclass
class TrainerConfig(ConfigInterface):
    model_mode: str = "nnx"
    train_epochs: int = 1
    max_steps: Optional[int] = None
    check_val_every_n_epoch: int = 1
    seed: int = 42
    debug: bool = False
    enable_progress_bar: Optional[bool] = None
    log_grad_norm: bool = False
    detect_nans: bool = False
    accumulate_grad_batches: int = 1
    steps_per_dispatch: int = 1
    compilation_cache_dir: Optional[str] = None
    checkpoint_on_interrupt: bool = True
    test_ckpt: str = "best"
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    callbacks: dict[str, CallbackInterface.cfgtype] = field(default_factory=dict)
    value_policies: dict[str, ValuePolicyInterface.cfgtype] = field(default_factory=dict)
    mesh: Optional[dict[str, int]] = None  # axis sizes, e.g. {data: -1, fsdp: 4}; see parallel/mesh.py
    sharding_rules: list[Any] = field(default_factory=list)  # [[regex, [axis | null per dim]], ...]
    logical_axis_rules: list[Any] = field(default_factory=list)  # [[logical name, mesh axis | null], ...]
    distributed: Optional[DistributedConfig] = None  # jax.distributed.initialize arguments; {}: detect the cluster
    ema: Optional[EMAConfig] = None  # EMA of the weights (trainer/ema.py); null: off, nothing added to the step
    precision: str = "fp32"  # fp32 | bf16-mixed | bf16-true (precision.py)
    remat: bool = False  # recompute the loss's activations in the backward pass (remat.py)
    remat_policy: str = "nothing_saveable"  # a policy of jax.checkpoint_policies
    remat_segments: Optional[int] = None  # null: one rematerialized segment per matmul or convolution

    def __post_init__(self):
        for name in ("train_epochs", "check_val_every_n_epoch", "accumulate_grad_batches", "steps_per_dispatch"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"trainer.max_steps must be >= 1 or null, got {self.max_steps}.")
        check_seed("trainer.seed", self.seed)
        if self.mesh is not None:
            check_axes(self.mesh)
        parse_rules(self.sharding_rules)
        parse_logical_rules(self.logical_axis_rules)
        check_test_ckpt(self.test_ckpt)
        check_policy_names(self.value_policies)
        check_precision(self.precision)
        check_remat(self.remat_policy, self.remat_segments)
