"""``trainer.distributed``: joining JAX's distributed runtime, so that several processes train one model.

Every process runs the same command; ``jax.distributed.initialize`` connects them through the coordinator (process
0's address). Fields left out are detected by jax where it recognises a cluster (SLURM, Open MPI, Kubernetes):
``trainer.distributed: {}`` under ``srun`` needs nothing else. On CPU the processes talk through gloo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jax
from compoconf import ConfigInterface

from jax_trainer.errors import InputError


@dataclass
class DistributedConfig(ConfigInterface):
    """Arguments of ``jax.distributed.initialize`` (None: detected from the cluster environment)."""

    coordinator_address: Optional[str] = None
    num_processes: Optional[int] = None
    process_id: Optional[int] = None
    local_device_ids: Optional[list[int]] = None
    initialization_timeout: int = 300

    def __post_init__(self):
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"trainer.distributed.num_processes must be >= 1, got {self.num_processes}.")
        if self.process_id is not None and self.num_processes is not None:
            if not 0 <= self.process_id < self.num_processes:
                raise ValueError(
                    f"trainer.distributed.process_id must be in [0, {self.num_processes}), got {self.process_id}."
                )
        if self.initialization_timeout < 1:
            raise ValueError(f"trainer.distributed.initialization_timeout must be >= 1 s, got {self.initialization_timeout}.")


def initialize(config: DistributedConfig | None) -> None:
    """Join the distributed runtime (once per process; a second call with the runtime up does nothing). Must run
    before anything asks jax for its devices: the CLI calls it first; from Python, call it before building data."""
    if config is None or jax.distributed.is_initialized():
        return
    if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    # Stopping on a signal is agreed by stop_agreement.py: jax's preemption service would hold SIGTERM, and its
    # sync point counter is shared with orbax's saves.
    jax.config.update("jax_enable_preemption_service", False)
    try:
        jax.distributed.initialize(
            coordinator_address=config.coordinator_address,
            num_processes=config.num_processes,
            process_id=config.process_id,
            local_device_ids=config.local_device_ids,
            initialization_timeout=config.initialization_timeout,
        )
    except (RuntimeError, ValueError) as err:
        raise InputError(f"trainer.distributed: cannot join the distributed runtime: {err}") from err


def is_main_process() -> bool:
    """Whether this process writes the run's logs, metrics and files (process 0)."""
    return jax.process_index() == 0


def coordination_client():
    """The client of jax's coordination service (a key-value store and barriers shared by all processes), None in
    one process. jax has no public accessor: this is the client ``jax.distributed.initialize`` connected, the one
    orbax's multihost module reads too."""
    if jax.process_count() == 1:
        return None
    from jax._src import distributed  # pylint: disable=import-outside-toplevel

    return distributed.global_state.client


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (nothing to wait for in a single process): after process
    0 changed the run's files, before the others read them."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

        multihost_utils.sync_global_devices(name)
