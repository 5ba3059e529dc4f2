"""Files a run writes while it runs: replaced whole, so a reader (or a crash) never sees half of one."""

import os


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``<path>.tmp``, then rename it over ``path`` in one step.

    Plain ``open``/``os.replace`` on strings: the epoch metrics file is written after every epoch, and
    pathlib's object arithmetic costs as much as the system calls.
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:  # text is written as given
        handle.write(text)
    os.replace(tmp, path)
