"""The checkpoint home: orbax storage, locating ``last``/``best``/a path, layout and shape checks, run-state
capture and restore, retention and the run directory's rebuild files. Imports nothing from the trainer."""

from jax_trainer.checkpoint.checkpointer import Checkpointer, Restored, find, resolve
from jax_trainer.checkpoint.policy import CheckpointPolicy
from jax_trainer.checkpoint.run_state import EpochPosition, Progress
from jax_trainer.checkpoint.errors import CheckpointError
from jax_trainer.checkpoint.store import MODEL, checkpoint_dir, committed_steps

__all__ = [
    "MODEL",
    "CheckpointError",
    "CheckpointPolicy",
    "Checkpointer",
    "EpochPosition",
    "Progress",
    "Restored",
    "checkpoint_dir",
    "committed_steps",
    "find",
    "resolve",
]
