"""Checkpoint files: one orbax step directory per checkpoint, holding plain array trees and JSON.

``<log_dir>/checkpoints/<step>/`` holds three items: ``state`` (the backend's state dict: model,
optimizer, rng), ``loop`` (the train metric accumulators, only in a checkpoint taken inside an epoch)
and ``meta`` (JSON: position, callback and logger state, backend, versions, config hash). Nothing is
pickled. Orbax writes a step into ``<step>.orbax-checkpoint-tmp`` and renames it once complete, so a
kill during a save leaves the earlier checkpoints as they were; only renamed steps count.

Trees are stored under string keys (``to_storage``) and read back into the structure of a template
from the live trainer (``from_storage``), after comparing every entry's shape and dtype with the
checkpoint's metadata, so a mismatch names the checkpoint and the entry instead of failing in orbax.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import jax
import numpy as np

CHECKPOINT_DIR = "checkpoints"
STATE, LOOP, META = "state", "loop", "meta"
TRASH_SUFFIX = ".deleting"
SAVE_DELAY_ENV = "JAX_TRAINER_TEST_SAVE_DELAY"
"""Test hook: seconds a save waits before its final rename, so a test can kill the process mid-save."""


class CheckpointError(ValueError):
    """A missing, damaged or incompatible checkpoint; the message names the checkpoint directory."""


def _ocp():
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel  (heavy; only needed for I/O)

    return ocp


# ----------------------------------------------------------------------------- locating checkpoints
def checkpoint_dir(log_dir: str | Path) -> Path:
    return Path(log_dir) / CHECKPOINT_DIR


def committed_steps(directory: str | Path) -> list[int]:
    """Steps of the complete checkpoints in ``directory`` (orbax's temporary directories excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit())


def resolve(ckpt_path: str | Path, log_dir: str | Path | None) -> Path | None:
    """A checkpoint directory from ``"last"`` (newest in ``log_dir``; None if there is none), a step
    directory, a run directory or a ``checkpoints`` directory (both: their newest step)."""
    if str(ckpt_path) == "last":
        if log_dir is None:
            raise CheckpointError("ckpt_path='last' needs a run directory.")
        steps = committed_steps(checkpoint_dir(log_dir))
        return checkpoint_dir(log_dir) / str(steps[-1]) if steps else None
    path = Path(ckpt_path)
    if path.name.isdigit() and (path / META).is_dir():
        return path
    for folder in (checkpoint_dir(path), path):
        steps = committed_steps(folder)
        if steps:
            return folder / str(steps[-1])
    if path.name.isdigit() and path.with_name(path.name + ".orbax-checkpoint-tmp").is_dir():
        raise CheckpointError(f"Checkpoint {path} was never completed (its save was interrupted).")
    raise CheckpointError(f"No checkpoint at {path}: expected a checkpoints/<step> directory or a run directory.")


# ----------------------------------------------------------------------------- tree conversion
def _key_str(entry) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def flatten(tree) -> dict[tuple[str, ...], Any]:
    """``{("params", "l1", "kernel"): leaf}``; None and empty containers have no leaves and vanish."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = tuple(_key_str(e) for e in path)
        if key in flat:
            raise CheckpointError(f"Two state entries map to the same checkpoint key {'/'.join(key)!r}.")
        flat[key] = leaf
    return flat


def nest(flat: dict[tuple[str, ...], Any]) -> dict:
    tree: dict = {}
    for key, leaf in flat.items():
        node = tree
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = leaf
    return tree


def to_storage(tree) -> dict:
    """A state tree as nested dicts with string keys: what orbax stores."""
    return nest(flatten(tree))


def from_storage(template, flat: dict[tuple[str, ...], Any]):
    """Values of ``flat`` (keyed like :func:`flatten`) in the structure of ``template``."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [flat[tuple(_key_str(e) for e in p)] for p, _ in paths_leaves])


def _name(key: tuple[str, ...]) -> str:
    return "/".join(key)


# ----------------------------------------------------------------------------- the store
class CheckpointStore:
    """An orbax CheckpointManager over one ``checkpoints`` directory: async saves, deferred deletes.

    Retention is decided by the callers (ModelCheckpoint), so orbax keeps everything it is given.
    ``save`` returns once the arrays are copied to the host; orbax waits for the previous save itself.
    A deleted step is removed only after the save that replaced it is committed, and by an atomic
    rename before its files go, so whatever moment a kill hits, the newest complete step directory
    is a whole checkpoint (a kill mid-delete leaves a ``*.deleting`` directory, purged on next start).
    """

    def __init__(self, directory: str | Path, read_only: bool = False):
        ocp = _ocp()
        self.directory = Path(directory).absolute()  # orbax wants absolute paths
        delay = float(os.environ.get(SAVE_DELAY_ENV, 0) or 0)
        options = ocp.CheckpointManagerOptions(  # orbax's own read_only mode only adds warnings: readers never save
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            temporary_path_class=_delayed_rename_class(delay) if delay and not read_only else None,
        )
        handlers = {
            STATE: ocp.StandardCheckpointHandler(),
            LOOP: ocp.StandardCheckpointHandler(),
            META: ocp.JsonCheckpointHandler(),
        }
        if not read_only:
            for trash in self.directory.glob(f"*{TRASH_SUFFIX}"):
                shutil.rmtree(trash, ignore_errors=True)
        self.manager = ocp.CheckpointManager(self.directory, item_handlers=handlers, options=options)
        self._pending: list[int] = []
        self._cleaners: list[threading.Thread] = []

    def save(self, step: int, state: dict, meta: dict, loop: dict | None = None) -> None:
        ocp = _ocp()
        if (self.directory / str(step)).exists():  # a step re-reached after a resume replaces the old one
            self.remove(step)
        items = {STATE: ocp.args.StandardSave(to_storage(state)), META: ocp.args.JsonSave(meta)}
        if loop:
            items[LOOP] = ocp.args.StandardSave(to_storage(loop))
        pending, self._pending = self._pending, []
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)  # first waits for the previous save
        for old in pending:
            self._discard(old)

    def delete(self, step: int) -> None:
        """Remove ``step`` once the newest save is committed (at the next save or ``wait``)."""
        self._pending.append(step)

    def remove(self, step: int) -> None:
        """Remove ``step`` now (no save may be in flight)."""
        self.manager.wait_until_finished()
        self._discard(step)
        self.manager.reload()

    def wait(self) -> None:
        """Block until every save is committed and every deletion done."""
        self.manager.wait_until_finished()
        pending, self._pending = self._pending, []
        for old in pending:
            self._discard(old)
        for cleaner in self._cleaners:
            cleaner.join()
        self._cleaners = []

    def close(self) -> None:
        self.wait()
        self.manager.close()

    def _discard(self, step: int) -> None:
        path = self.directory / str(step)
        if not path.is_dir():
            return
        trash = path.with_name(path.name + TRASH_SUFFIX)
        shutil.rmtree(trash, ignore_errors=True)
        path.rename(trash)
        cleaner = threading.Thread(target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True}, daemon=True)
        cleaner.start()
        self._cleaners.append(cleaner)


def _delayed_rename_class(delay: float):
    import asyncio  # pylint: disable=import-outside-toplevel

    from orbax.checkpoint._src.path import atomicity  # pylint: disable=import-outside-toplevel

    class DelayedRename(atomicity.AtomicRenameTemporaryPath):
        async def finalize(self, *args, **kwargs):
            await asyncio.sleep(delay)
            return await super().finalize(*args, **kwargs)

    return DelayedRename


# ----------------------------------------------------------------------------- reading
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
    with _reading(path) as (store, step):
        try:
            meta = store.manager.restore(step, args=_ocp().args.Composite(**{META: _ocp().args.JsonRestore()}))[META]
        except Exception as err:  # orbax raises many types; the message says which file is bad
            message = f"Checkpoint {path} is damaged: cannot read its metadata ('{META}'): {_short(err)}"
            raise CheckpointError(message) from err
    if not isinstance(meta, dict) or "backend" not in meta:
        raise CheckpointError(f"Checkpoint {path} has no jax_trainer metadata; was it written by jax_trainer?")
    return meta


def _stored_layout(store: CheckpointStore, step: int, item: str, path: Path) -> dict[tuple[str, ...], Any]:
    try:
        metadata = store.manager.item_metadata(step)[item]
        return flatten(metadata.tree if hasattr(metadata, "tree") else metadata)
    except Exception as err:  # orbax and tensorstore raise many types; all mean an unreadable checkpoint
        raise _damaged(path, item, err) from err


def restore_tree(path: Path, item: str, template, subset: bool = False):
    """Read ``item`` into the structure, dtypes and shardings of ``template`` (a state tree).

    ``subset``: the template may be one part of what is stored (the model inside a full train state);
    that part is found either at the top level or under one top-level key.
    """
    with _reading(path) as (store, step):
        stored = _stored_layout(store, step, item, path)
        wanted = flatten(template)
        prefix = _find_prefix(stored, wanted) if subset else ()
        _check_layout(path, stored, {prefix + k: v for k, v in wanted.items()}, _scope(stored, wanted, prefix, subset))
        targets = {k: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype) for k, m in stored.items()}
        for key, leaf in wanted.items():
            targets[prefix + key] = _ocp().utils.to_shape_dtype_struct(leaf)
        restored = _restore(store, step, item, nest(targets), path)
    ours = {k[len(prefix) :]: v for k, v in flatten(restored).items() if k[: len(prefix)] == prefix}
    return from_storage(template, ours)


def restore_raw(path: Path, item: str) -> dict[tuple[str, ...], Any]:
    """Read ``item`` as stored (host arrays), keyed like :func:`flatten`."""
    with _reading(path) as (store, step):
        stored = _stored_layout(store, step, item, path)
        targets = nest({k: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype) for k, m in stored.items()})
        return flatten(_restore(store, step, item, targets, path))


def _restore(store: CheckpointStore, step: int, item: str, targets: dict, path: Path):
    ocp = _ocp()
    try:
        return store.manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(targets)}))[item]
    except Exception as err:  # orbax and tensorstore raise many types; all mean an unreadable checkpoint
        raise _damaged(path, item, err) from err


def _damaged(path: Path, item: str, err: Exception) -> CheckpointError:
    """The error for an unreadable item, naming the array entry when tensorstore's message gives it."""
    text = str(err)
    found = re.search(r'Error reading "([^"/]+)/', text) or re.search(r"""['"]path['"]:\s*['"]([^'"/]+)/['"]""", text)
    where = f"entry '{found.group(1).replace('.', '/')}' of '{item}'" if found else f"'{item}'"
    return CheckpointError(f"Checkpoint {path} is damaged: cannot read {where}: {_short(err)}")


def _find_prefix(stored: dict, wanted: dict) -> tuple[str, ...]:
    candidates = [()] + sorted({(k[0],) for k in stored if len(k) > 1})
    for prefix in candidates:
        if all(prefix + k in stored for k in wanted):
            return prefix
    return ()


def _scope(stored: dict, wanted: dict, prefix: tuple, subset: bool) -> list:
    """Stored entries that must all be in the template: everything, or for a part of a bigger tree the
    entries under its prefix (or, without prefix, under the template's own top-level keys)."""
    if not subset:
        return list(stored)
    if prefix:
        return [k for k in stored if k[: len(prefix)] == prefix]
    tops = {k[0] for k in wanted}
    return [k for k in stored if k[0] in tops]


def _check_layout(path: Path, stored: dict, wanted: dict, scope: list) -> None:
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
            wrong.append(f"entry '{_name(key)}' is {theirs} in the checkpoint but {ours} here")
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise CheckpointError(f"Checkpoint {path} does not match this model: {'; '.join(wrong[:3])}{more}.")


def _listing(keys: list, limit: int = 5) -> str:
    names = [f"'{_name(k)}'" for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(names) + more


def _short(err: Exception, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    text = re.sub(r"\[?tensorstore_spec.*", "", text).strip()
    return text[:limit] + ("..." if len(text) > limit else "")
