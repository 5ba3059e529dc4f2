"""GradientSpikeMonitor: finds steps whose gradient norm jumps above ``threshold`` × its running average.

The per-step work runs inside the compiled train step (a :class:`StepExtra`): the EMA of the global gradient
norm and a fixed-size record of spikes live in the step's carry and reach the host once per epoch, so the
monitor never syncs per step and needs neither ``log_grad_norm`` nor a per-step metric.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import optax
from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig
from jax_trainer.callbacks.step_extras import StepExtra
from jax_trainer.files import write_atomic

LOGGER = logging.getLogger("jax_trainer")
MAX_SPIKES_PER_EPOCH = 256  # on-device record size; more spikes in one epoch are counted, the oldest dropped
_FIELDS = ("step", "batch_idx", "grad_norm", "grad_norm_ema", "loss")
_INT_FIELDS = ("step", "batch_idx")


@dataclass
class GradientSpikeMonitorConfig(CallbackConfig):
    """A step is a spike when its gradient norm exceeds ``threshold`` × the EMA (``ema_decay``) of the norms
    before it, or is not finite. Every ``every_n_epochs`` epochs the count is logged (and with ``log_to_disk``
    every spike is written to ``<log_dir>/gradient_spikes.json``)."""

    threshold: float = 2.0
    log_to_disk: bool = False
    ema_decay: float = 0.995

    def __post_init__(self):
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"GradientSpikeMonitor.ema_decay must be in (0, 1), got {self.ema_decay}.")
        if self.threshold <= 0:
            raise ValueError(f"GradientSpikeMonitor.threshold must be > 0, got {self.threshold}.")


@register
class GradientSpikeMonitor(Callback, StepExtra):
    """Logs ``optimizer/grad_spikes`` (spikes since the last report) and ``optimizer/grad_norm_ema``.

    Each spike is recorded with its global ``step``, ``epoch``, ``batch_idx`` (0-based within the epoch),
    ``grad_norm``, ``grad_norm_ema`` (the average it was compared to) and ``loss``. The EMA starts at the
    first norm, only finite norms enter it, and it carries over epochs and resumes (``state_dict``).
    """

    config: GradientSpikeMonitorConfig

    def __init__(self, config: GradientSpikeMonitorConfig, trainer=None):
        super().__init__(config, trainer)
        self.ema: float | None = None
        self.seen = 0
        self.spikes: list[dict] = []
        self.unreported = 0

    # ---------------------------------------------------------------- on device (traced in the train step)
    def init_step_state(self) -> dict:
        state = {
            "ema": np.asarray(self.ema or 0.0, np.float32),
            "seen": np.asarray(self.seen, np.int32),
            "num_spikes": np.asarray(0, np.int32),
            "batches": np.asarray(0, np.int32),  # steps so far this epoch: the next spike's batch index
        }
        for name in _FIELDS:
            state[name] = np.zeros(MAX_SPIKES_PER_EPOCH, np.int32 if name in _INT_FIELDS else np.float32)
        return state

    def update_step_state(self, state: dict, info) -> dict:
        state = {name: jnp.asarray(value) for name, value in state.items()}  # host arrays in debug (no jit) mode
        norm = optax.tree.norm(info.grads).astype(jnp.float32)
        ema, seen = state["ema"], state["seen"]
        finite = jnp.isfinite(norm)
        spike = (seen > 0) & ((norm > self.config.threshold * ema) | ~finite)
        slot = state["num_spikes"] % MAX_SPIKES_PER_EPOCH
        decay = self.config.ema_decay
        averaged = jnp.where(seen > 0, decay * ema + (1 - decay) * norm, norm)
        new = {
            "ema": jnp.where(finite, averaged, ema),
            "seen": seen + finite.astype(jnp.int32),
            "num_spikes": state["num_spikes"] + spike.astype(jnp.int32),
            "batches": state["batches"] + 1,
        }
        for name, value in zip(_FIELDS, (info.step, state["batches"], norm, ema, info.loss)):
            buffer = state[name]
            new[name] = buffer.at[slot].set(jnp.where(spike, value.astype(buffer.dtype), buffer[slot]))
        return new

    # ---------------------------------------------------------------- host
    def receive_step_state(self, state: dict) -> None:
        self.ema = float(state["ema"]) if int(state["seen"]) > 0 else None
        self.seen = int(state["seen"])
        total = int(state["num_spikes"])
        kept = min(total, MAX_SPIKES_PER_EPOCH)
        if total > kept:
            LOGGER.warning("GradientSpikeMonitor: %d spikes this epoch, only the last %d are recorded.", total, kept)
        epoch = self.trainer.current_epoch
        for slot in (np.arange(total - kept, total) % MAX_SPIKES_PER_EPOCH):
            spike = {name: _json_number(state[name][slot].item()) for name in _FIELDS}
            spike["epoch"] = epoch
            self.spikes.append(spike)
            LOGGER.warning(
                "Gradient spike at step %d (epoch %d, batch %d): norm %s > %g x EMA %s.",
                spike["step"], epoch, spike["batch_idx"], spike["grad_norm"], self.config.threshold,
                spike["grad_norm_ema"],
            )
        self.unreported += total

    def on_filtered_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        scalars = {"optimizer/grad_spikes": float(self.unreported)}
        if self.ema is not None:
            scalars["optimizer/grad_norm_ema"] = self.ema
        self.trainer.logger.log_scalars(scalars, self.trainer.global_step)
        self.unreported = 0
        if self.config.log_to_disk and self.trainer.logger.is_main_process:
            write_atomic(self.trainer.log_dir / "gradient_spikes.json", json.dumps(self.spikes, indent=1))

    def state_dict(self) -> dict:
        return {"ema": self.ema, "seen": self.seen, "spikes": self.spikes, "unreported": self.unreported}

    def load_state_dict(self, state: dict) -> None:
        self.ema, self.seen, self.unreported = state["ema"], state["seen"], state["unreported"]
        self.spikes = [dict(spike) for spike in state["spikes"]]


def _json_number(value):
    """Strict JSON has no NaN/inf: a non-finite norm or loss is recorded as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
