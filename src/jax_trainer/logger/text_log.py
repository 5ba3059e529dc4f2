"""``<log_dir>/train.log``: the ``jax_trainer`` Python log of a run, kept next to its metrics."""

import logging
from pathlib import Path

LOGGER_NAME = "jax_trainer"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class TextLogHandler(logging.FileHandler):
    """The file handler of one run; its type marks the handlers this module manages."""


_original_level: dict[str, int] = {}


def _sync_level(logger: logging.Logger) -> None:
    """Lower the logger's level just enough for our handlers to see their records; restore it when none remain.

    A level left at NOTSET would inherit the root's WARNING and starve an "info" train.log.
    """
    ours = [h.level for h in logger.handlers if isinstance(h, TextLogHandler)]
    if not ours:
        logger.setLevel(_original_level.pop(logger.name, logger.level))
        return
    original = _original_level.setdefault(logger.name, logger.level)
    logger.setLevel(min(ours) if original == logging.NOTSET else min(ours + [original]))


def setup_text_log(log_dir: str | Path, verbosity: str = "info") -> logging.Handler:
    """Append records of the ``jax_trainer`` logger at ``verbosity`` or above to ``<log_dir>/train.log``."""
    if verbosity not in _LEVELS:
        raise ValueError(f"log_file_verbosity must be one of {tuple(_LEVELS)}, got {verbosity!r}.")
    path = Path(log_dir) / "train.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = TextLogHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(_LEVELS[verbosity])
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    _sync_level(logger)
    return handler


def teardown_text_log(handler: logging.Handler) -> None:
    """Detach and close a handler from `setup_text_log`; safe to call twice."""
    logger = logging.getLogger(LOGGER_NAME)
    if handler in logger.handlers:
        logger.removeHandler(handler)
        _sync_level(logger)
    handler.close()
