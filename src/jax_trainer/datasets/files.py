"""Locating dataset files, with an error that says where we looked and what was expected."""

from pathlib import Path


def find_file(directories: list[Path], names: list[str], expected: str) -> Path:
    """First existing ``directory/name``; otherwise a FileNotFoundError listing every path tried."""
    tried = [d / name for d in directories for name in names]
    for path in tried:
        if path.is_file():
            return path
    listing = ", ".join(str(p) for p in tried)
    raise FileNotFoundError(f"{expected} not found; looked for: {listing}")
