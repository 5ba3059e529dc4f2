"""Checksums of every array a checkpoint holds: recorded in its metadata at save time, verified on restore.

orbax checksums only tensorstore's shard index, not the array data (orbax 0.12 ``tensorstore_utils``: the zarr3
``crc32c`` codec sits in ``index_codecs`` alone, and no option adds it to the data codecs), so a flipped byte inside
a chunk loads silently; hence CRC32 (``zlib``, the standard library) per entry, over the values as saved.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from jax_trainer.checkpoint.errors import DamagedCheckpointError
from jax_trainer.checkpoint.trees import Key, flatten, name
from jax_trainer.parallel.placement import held_whole


def checksums(tree) -> dict[str, str]:
    """``{"model/params/l1/kernel": "crc32:1a2b3c4d", ...}`` of every array in ``tree`` that this process holds
    whole (all of them in a single-process run; an array sharded over processes is left to orbax's own checks)."""
    return {name(key): _crc(leaf) for key, leaf in flatten(tree).items() if held_whole(leaf)}


def verify(path: Path, item: str, restored: dict[Key, Any], expected: dict[str, str] | None) -> None:
    """Raise a DamagedCheckpointError naming the first entry of ``restored`` whose values are not those saved, or
    when the stored entries are not the ones recorded (a file that lists the arrays is missing or damaged).
    ``expected`` None: the checkpoint recorded no checksums for ``item``."""
    if expected is None:
        return
    names = {name(key) for key in restored}
    if not set(expected) <= names:
        missing = sorted(set(expected) - names)
        raise DamagedCheckpointError(
            f"Checkpoint {path} is damaged: '{item}' lists {len(names)} arrays but {len(expected)} were saved "
            f"(missing {missing[:3]}{' ...' if len(missing) > 3 else ''}); its array metadata "
            f"({item}/_METADATA) may be missing or damaged."
        )
    for key, value in restored.items():
        if name(key) in expected and held_whole(value) and _crc(value) != expected[name(key)]:
            raise DamagedCheckpointError(
                f"Checkpoint {path} is damaged: entry '{name(key)}' of '{item}' differs from what was saved "
                "(checksum mismatch)."
            )


def _crc(leaf) -> str:
    data = np.ascontiguousarray(np.asarray(leaf))
    return f"crc32:{zlib.crc32(data.reshape(-1).view(np.uint8)):08x}"
