"""The test after ``fit``: which weights it runs on (``trainer.test_ckpt``, or ``train_model(test_ckpt=...)``).

``"best"`` (the default) tests the best checkpoint by the monitor of a ``ModelCheckpoint`` — Lightning's
``trainer.test(ckpt_path="best")`` after ``fit`` — and the final weights when no checkpoint policy monitors a
metric. ``"last"`` tests the weights training ended with. Either way the trainer keeps its final weights: only
the test sees the best ones.
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("jax_trainer")
TEST_CKPTS = ("best", "last")


def check_test_ckpt(value: str, field: str = "trainer.test_ckpt") -> str:
    """``value`` if it is a known choice, else a ValueError naming ``field``."""
    if value not in TEST_CKPTS:
        raise ValueError(f"{field} must be one of {TEST_CKPTS}, got {value!r}.")
    return value


def run_final_test(trainer, loader, which: str) -> dict[str, float]:
    """The test metrics of the weights ``which`` names (see the module docstring), at the trainer's last epoch."""
    check_test_ckpt(which, "test_ckpt")
    best = [step for step in (policy.best_step() for policy in trainer.checkpointer.policies) if step is not None]
    if which == "last" or not best:
        return trainer.eval_model(loader, "test", trainer.current_epoch)
    model_state = trainer.model_state
    template = trainer.backend.model_state_dict(model_state)
    tree, progress, path = trainer.checkpointer.load_weights(trainer.checkpointer.directory / str(best[0]), template)
    LOGGER.info("Testing the best checkpoint, %s (epoch %d, step %d).", path, progress.epoch, progress.step)
    weights = trainer.placement.place(trainer.backend.load_model_state_dict(model_state, tree), trainer.backend.partition_annotations())
    return trainer.eval_model(loader, "test", trainer.current_epoch, model_state=weights)
