"""The checkpoint home's errors: a checkpoint that is missing, incompatible or damaged, or that cannot be written."""

from jax_trainer.errors import InputError


class CheckpointError(InputError):
    """A missing, damaged or incompatible checkpoint; the message names the checkpoint directory."""


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read or whose values differ from what was saved."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission, a read-only file system); the previous
    checkpoints are intact. ``errno`` is the operating system's error number."""
