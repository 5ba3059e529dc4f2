"""Reading a checkpoint back: its metadata, and its arrays into the structure of a live template.

Every entry's shape and dtype is compared with the checkpoint's own metadata before orbax reads anything, so a
mismatch names the checkpoint and the entry (``entry 'model/params/head/kernel' is float32[16, 10] in the
checkpoint but float32[24, 10] here``) instead of failing inside orbax, and an unreadable file names its item.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jax_trainer.checkpoint.errors import CheckpointError, DamagedCheckpointError
from jax_trainer.checkpoint.integrity import verify
from jax_trainer.checkpoint.store import META, CheckpointStore, ocp
from jax_trainer.checkpoint.trees import Key, flatten, from_storage, name, nest, subtree


@contextlib.contextmanager
def _reading(path: Path):
    """(store, step) of the checkpoint directory ``path``, closed after use."""
    if not (path.name.isdigit() and path.is_dir()):
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    store = CheckpointStore(path.parent, read_only=True)
    try:
        if int(path.name) not in store.manager.all_steps():
            raise CheckpointError(f"Checkpoint {path} is incomplete (its save never finished).")
        yield store, int(path.name)
    finally:
        store.manager.close()


def read_meta(path: Path) -> dict:
    """The JSON metadata of a checkpoint written by jax_trainer."""
    with _reading(path) as (store, step):
        try:
            meta = store.manager.restore(step, args=ocp().args.Composite(**{META: ocp().args.JsonRestore()}))[META]
        except Exception as err:  # orbax raises many types; the message says which file is bad
            message = f"Checkpoint {path} is damaged: cannot read its metadata ('{META}'): {_short(err)}"
            raise DamagedCheckpointError(message) from err
    if not isinstance(meta, dict) or "backend" not in meta:
        raise CheckpointError(f"Checkpoint {path} has no jax_trainer metadata; was it written by jax_trainer?")
    return meta


def restore_tree(path: Path, item: str, template, part: Key = (), checksums: dict | None = None):
    """Read ``item`` into the structure, dtypes and shardings of ``template``, every array verified against
    ``checksums`` (recorded at save time; see ``integrity.py``) before anything is returned.

    ``part``: the template is the entry of that key path of what is stored (``("model",)``: the model inside a full
    train state); stored entries outside it are read as they are and dropped.
    """
    with _reading(path) as (store, step):
        stored = _stored_layout(store, step, item, path)
        if checksums is not None and not set(checksums) <= {name(k) for k in stored}:
            verify(path, item, stored, checksums)  # names the missing entries (a damaged layout, not another model)
        wanted = {part + k: v for k, v in flatten(template).items()}
        _check_layout(path, stored, wanted, [k for k in stored if k[: len(part)] == part])
        targets = {k: _local_target(m) for k, m in stored.items()}
        targets.update({k: ocp().utils.to_shape_dtype_struct(leaf) for k, leaf in wanted.items()})
        restored = flatten(_restore(store, step, item, nest(targets), path))
    verify(path, item, restored, checksums)
    return from_storage(template, subtree(restored, part))


def restore_raw(path: Path, item: str, checksums: dict | None = None) -> dict[Key, Any]:
    """Read ``item`` as stored (host arrays), keyed like :func:`~jax_trainer.checkpoint.trees.flatten`, verified
    against ``checksums`` when given."""
    with _reading(path) as (store, step):
        stored = _stored_layout(store, step, item, path)
        targets = nest({k: _local_target(m) for k, m in stored.items()})
        restored = flatten(_restore(store, step, item, targets, path))
    verify(path, item, restored, checksums)
    return restored


def _local_target(meta) -> jax.ShapeDtypeStruct:
    """Read a stored array whole onto this process's first device, whatever the devices that wrote it (orbax
    refuses a target without sharding when the writers' topology differs)."""
    device = jax.local_devices()[0]
    return jax.ShapeDtypeStruct(tuple(meta.shape), meta.dtype, sharding=jax.sharding.SingleDeviceSharding(device))


def _stored_layout(store: CheckpointStore, step: int, item: str, path: Path) -> dict[Key, Any]:
    try:
        metadata = store.manager.item_metadata(step)[item]
        return flatten(metadata.tree if hasattr(metadata, "tree") else metadata)
    except Exception as err:  # orbax and tensorstore raise many types; all mean an unreadable checkpoint
        raise _damaged(path, item, err) from err


def _restore(store: CheckpointStore, step: int, item: str, targets: dict, path: Path):
    args = ocp().args
    try:
        return store.manager.restore(step, args=args.Composite(**{item: args.StandardRestore(targets)}))[item]
    except Exception as err:  # orbax and tensorstore raise many types; all mean an unreadable checkpoint
        raise _damaged(path, item, err) from err


def _damaged(path: Path, item: str, err: Exception) -> DamagedCheckpointError:
    """The error for an unreadable item, naming the array entry when tensorstore's message gives it."""
    text = str(err)
    found = re.search(r'Error reading "([^"/]+)/', text) or re.search(r"""['"]path['"]:\s*['"]([^'"/]+)/['"]""", text)
    where = f"entry '{found.group(1).replace('.', '/')}' of '{item}'" if found else f"'{item}'"
    return DamagedCheckpointError(f"Checkpoint {path} is damaged: cannot read {where}: {_short(err)}")


def _check_layout(path: Path, stored: dict, wanted: dict, scope: list) -> None:
    """Every entry of ``wanted`` is stored with its shape and dtype, and every stored entry of ``scope`` is wanted."""
    missing = [k for k in wanted if k not in stored]
    extra = [k for k in scope if k not in wanted]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"this model has {_listing(missing)} which the checkpoint lacks")
        if extra:
            parts.append(f"the checkpoint has {_listing(extra)} which this model lacks")
        raise CheckpointError(f"Checkpoint {path} does not match this model: {'; '.join(parts)}.")
    wrong = []
    for key, leaf in sorted(wanted.items(), key=lambda item: (len(item[0]), item[0])):  # parameters before moments
        meta = stored[key]
        shape, dtype = tuple(np.shape(leaf)), np.dtype(leaf.dtype)
        if tuple(meta.shape) != shape or np.dtype(meta.dtype) != dtype:
            theirs, ours = f"{np.dtype(meta.dtype).name}{list(meta.shape)}", f"{dtype.name}{list(shape)}"
            wrong.append(f"entry '{name(key)}' is {theirs} in the checkpoint but {ours} here")
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise CheckpointError(f"Checkpoint {path} does not match this model: {'; '.join(wrong[:3])}{more}.")


def _listing(keys: list, limit: int = 5) -> str:
    names = [f"'{name(k)}'" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(names) + more


def _short(err: Exception, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    text = re.sub(r"\[?tensorstore_spec.*", "", text).strip()
    return text[:limit] + ("..." if len(text) > limit else "")
