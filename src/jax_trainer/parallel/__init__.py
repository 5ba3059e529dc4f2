"""Devices and hosts: the mesh, where each array of the train state lives, how host batches become global arrays,
and the multi-process runtime. The one home of device placement; it imports nothing above it."""

from jax_trainer.parallel.mesh import BATCH_AXES, MeshError, build_mesh
from jax_trainer.parallel.placement import Placement
from jax_trainer.parallel.rules import ShardingRule, parse_logical_rules, parse_rules
from jax_trainer.parallel.runtime import DistributedConfig, barrier, initialize, is_main_process

__all__ = [
    "BATCH_AXES",
    "DistributedConfig",
    "MeshError",
    "Placement",
    "ShardingRule",
    "barrier",
    "build_mesh",
    "initialize",
    "is_main_process",
    "parse_logical_rules",
    "parse_rules",
]
