"""The error a run raises when what it was given is wrong, as opposed to a bug in jax_trainer.

Each part has its own subclass (``ConfigError``, ``CheckpointError``, ``DataError``, ``MigrationError``,
``NonFiniteError``); the command line prints any of them as a one-paragraph message with exit code 2 and lets every
other exception through with its traceback, so an internal bug never looks like bad input.
"""


class InputError(ValueError):
    """Bad input: a config, a file, a checkpoint, data, a monitored metric or a diverging value."""
