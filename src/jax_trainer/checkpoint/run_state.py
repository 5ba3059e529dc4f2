"""What a checkpoint records about a run besides its state tree, and the exact position inside an epoch.

The ``meta`` item (JSON) holds the global step, the epoch, how many batches of it were trained (None once it is
complete, with its validation), ``should_stop``, whether the optimizer state is included, each callback's and the
logger's ``state_dict()``, the best step of the checkpoint policies, the backend, library versions and a hash of
the config. Inside an epoch the ``loop`` item holds the epoch's metric accumulators and CONCAT values, by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from jax_trainer.checkpoint.errors import CheckpointError
from jax_trainer.checkpoint.trees import flatten, from_storage, name

FORMAT_VERSION = 2
"""2: state trees keyed by name (``model``, ``optimizer``, ...) for every backend."""
_DISTRIBUTIONS = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "jax_trainer")


class Progress(NamedTuple):
    """How far a run got: the global step, the current epoch and whether a callback asked it to stop."""

    step: int
    epoch: int
    should_stop: bool


@dataclasses.dataclass
class EpochPosition:
    """Inside an epoch: ``batch`` batches trained, the loop ``carry`` entries as (name, value) pairs, ``concats``
    as (steps, values) pairs in dispatch order; ``source`` is the checkpoint it was read from."""

    epoch: int
    batch: int
    carry: list[tuple[str, Any]]
    concats: list[tuple[int, dict]]
    source: Path | None = None

    @classmethod
    def of(cls, epoch: int, batch: int, carry, concats: list) -> "EpochPosition":
        """The position of a running epoch: its carry (any pytree) recorded entry by entry."""
        return cls(epoch, batch, [(name(k), v) for k, v in flatten(carry).items()], list(concats))

    def restore_carry(self, fresh):
        """The recorded carry in the structure of ``fresh`` (the carry this trainer starts an epoch with)."""
        flat = flatten(fresh)
        names, stored = [name(k) for k in flat], [n for n, _ in self.carry]
        if names != stored:
            raise CheckpointError(
                f"Checkpoint {self.source} was taken inside epoch {self.epoch} with other train metrics ({stored}) "
                f"than this trainer computes ({names}); resume from an end-of-epoch checkpoint instead."
            )
        values = {}
        for (key, template), (entry, value) in zip(flat.items(), self.carry):
            if np.shape(value) != np.shape(template):
                raise CheckpointError(
                    f"Checkpoint {self.source}: train metric accumulator '{entry}' has shape {np.shape(value)}, "
                    f"expected {np.shape(template)}."
                )
            values[key] = jnp.asarray(value, dtype=template.dtype)
        return from_storage(fresh, values)


def build_meta(
    progress: Progress, position: EpochPosition | None, with_optimizer: bool, extra: dict
) -> tuple[dict, dict | None]:
    """(meta, loop arrays or None) of a checkpoint; ``extra`` adds the owner's entries (states, versions)."""
    meta = {
        "format": FORMAT_VERSION,
        "step": int(progress.step),
        "epoch": int(progress.epoch),
        "batch": None if position is None else int(position.batch),
        "epoch_done": position is None,
        "should_stop": bool(progress.should_stop),
        "has_optimizer": bool(with_optimizer),
        **extra,
    }
    if position is None:
        return meta, None
    meta["accumulators"] = [entry for entry, _ in position.carry]
    loop = {"acc": {str(i): value for i, (_, value) in enumerate(position.carry)}}
    if position.concats:
        meta["concats"] = [[n, list(values)] for n, values in position.concats]
        loop["concat"] = {
            str(i): {str(j): v for j, v in enumerate(values.values())} for i, (_, values) in enumerate(position.concats)
        }
    return meta, loop


def read_position(meta: dict, loop: dict, source: Path) -> EpochPosition:
    """The :class:`EpochPosition` of an inside-epoch checkpoint from its meta and (raw) loop arrays."""
    carry = [(entry, loop[("acc", str(i))]) for i, entry in enumerate(meta["accumulators"])]
    concats = [
        (n, {key: loop[("concat", str(i), str(j))] for j, key in enumerate(keys)})
        for i, (n, keys) in enumerate(meta.get("concats", []))
    ]
    return EpochPosition(meta["epoch"], meta["batch"], carry, concats, source)


def check_format(meta: dict, path: Path) -> None:
    """Refuse a checkpoint of another format version, naming both."""
    found = meta.get("format", 0)
    if found != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format {found}; this version of jax_trainer reads format {FORMAT_VERSION}."
        )


def config_hash(full_config: dict | None) -> str | None:
    """A short hash of a resolved config, to warn when a run resumes with another one."""
    if full_config is None:
        return None
    return hashlib.sha256(json.dumps(full_config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def config_changes(old: dict | None, new: dict | None, limit: int = 6) -> str:
    """What differs between two resolved configs, as ``trainer.train_epochs: 3 -> 5; ...`` (empty if unknown)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    found: list[str] = []

    def walk(a, b, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}" if path else str(key))
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            found.append(f"{path}: {a!r} -> {b!r}")

    walk(old, new, "")
    more = f"; and {len(found) - limit} more" if len(found) > limit else ""
    return "; ".join(found[:limit]) + more


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint, recorded in its metadata."""
    found = {}
    for dist in _DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def strict_json(owner: str, value):
    """``value`` as JSON data, or a TypeError naming ``owner``: a state dict that JSON cannot hold is a bug of its
    owner, not something to stringify silently (unlike the logger tools' lenient ``jsonable``)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise TypeError(f"The state_dict() of {owner} must be JSON-serialisable: {err}") from err
