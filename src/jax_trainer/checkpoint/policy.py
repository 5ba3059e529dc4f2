"""The checkpoint policy protocol: which steps are worth writing and keeping.

A policy (``ModelCheckpoint``) only decides; the :class:`~jax_trainer.checkpoint.checkpointer.Checkpointer` writes
at the next save point and deletes what no policy keeps, after a newer checkpoint is committed.
"""

from __future__ import annotations


class CheckpointPolicy:
    """Base class of every checkpoint policy; the checkpointer finds policies among the callbacks by this type."""

    @property
    def save_optimizer_state(self) -> bool:
        """False: the checkpoints this policy asks for hold the model only (cannot resume training)."""
        return True

    def decide(self, step: int) -> bool:
        """Record a checkpoint at ``step`` in the policy's bookkeeping; False if it is not worth writing."""
        raise NotImplementedError

    def kept_steps(self) -> set[int]:
        """The steps this policy keeps on disk."""
        raise NotImplementedError

    def pop_dropped(self) -> list[int]:
        """Steps this policy stopped keeping since the last call (deleted unless another policy keeps them)."""
        raise NotImplementedError

    def best_step(self) -> int | None:
        """The step of the best checkpoint by the policy's monitor, None without one (``ckpt_path="best"``)."""
        return None
