"""Locating dataset files, with an error that says where we looked and what was expected."""

from pathlib import Path

from jax_trainer.errors import InputError


class DataError(InputError):
    """A data file that is missing, malformed or inconsistent, or a split that cannot be made."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A data file that is not where the config says; the message lists every path tried."""


def find_file(directories: list[Path], names: list[str], expected: str) -> Path:
    """First existing ``directory/name``; otherwise a DataFileNotFoundError listing every path tried."""
    tried = [d / name for d in directories for name in names]
    for path in tried:
        if path.is_file():
            return path
    listing = ", ".join(str(p) for p in tried)
    raise DataFileNotFoundError(f"{expected} not found; looked for: {listing}")
