"""How a run ends other than by success or a bug: bad input (:class:`InputError`) or a signal (:class:`Interrupted`).

Each part has its own InputError subclass (``ConfigError``, ``CheckpointError``, ``DataError``, ``MigrationError``,
``NonFiniteError``); the command line prints any of them as a one-paragraph message with exit code 2, an
``Interrupted`` as one line with exit code 128 + the signal number, and lets every other exception through with its
traceback, so an internal bug never looks like bad input. Standard library only: the command line imports it
before jax.
"""

import signal


class InputError(ValueError):
    """Bad input: a config, a file, a checkpoint, data, a monitored metric or a diverging value."""


class Interrupted(Exception):
    """Training stopped by a signal at ``step``; ``checkpoint`` is the checkpoint of that position (None when the run
    writes no checkpoints). ``exit_code`` is the shell's: 128 + the signal number (143 SIGTERM, 130 SIGINT)."""

    def __init__(self, signum: int, step: int, checkpoint=None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        resume = "resume with --ckpt-path last" if checkpoint is not None else "no checkpoint was written"
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; {resume}")
