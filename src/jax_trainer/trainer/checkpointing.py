"""Exact resume: what a checkpoint records about a run, and how the loop continues from it.

Checkpoints are written at *save points*: between two train steps (after every callback saw the
last one) or when an epoch is complete (after its validation and the callbacks of both). A callback
asks for a save with :func:`request_save` from any hook; the loop runs it at the next save point. So
a checkpoint is consistent: every callback and the logger have processed exactly the steps it holds,
whichever order the callbacks run in. A step-triggered save that lands on an epoch's last step is
therefore written once the epoch is complete, and a resumed epoch always has batches left.

Recorded: the backend state dict (model, optimizer, rng), global step, epoch, how many batches of the
epoch were trained, whether the epoch is complete, ``should_stop``, the train metric accumulators of an
unfinished epoch, each callback's and the logger's ``state_dict()``. A resumed epoch replays the
loader order of that epoch (a pure function of the epoch index) and skips the batches already seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from jax_trainer.trainer.checkpoint_io import (
    LOOP,
    STATE,
    CheckpointError,
    CheckpointStore,
    checkpoint_dir,
    committed_steps,
    flatten,
    from_storage,
    read_meta,
    resolve,
    restore_raw,
    restore_tree,
)

LOGGER = logging.getLogger("jax_trainer")
FORMAT_VERSION = 1
_DISTRIBUTIONS = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "jax_trainer")


@dataclasses.dataclass
class EpochPosition:
    """Inside an epoch: ``batch`` batches trained, ``acc`` as (path, value) pairs, ``concats`` as the loop has them."""

    epoch: int
    batch: int
    acc: list[tuple[str, Any]]
    concats: list[tuple[int, dict]]
    source: Path | None = None


class EpochProgress:
    """Where a train epoch starts: the restored position after a mid-epoch resume, else its first batch."""

    def __init__(self, trainer, epoch_idx: int):
        resume, trainer.resume_position = trainer.resume_position, None
        self.trainer, self.epoch = trainer, epoch_idx
        self.resume = resume if resume is not None and resume.epoch == epoch_idx else None
        self.start_batch = self.resume.batch if self.resume else 0
        self.first_step = trainer.global_step - self.start_batch

    def carry(self, fresh: dict) -> tuple[dict, list]:
        """Initial (accumulators, concats) of the epoch: ``fresh``, or those of the checkpoint."""
        if self.resume is None:
            return fresh, []
        acc = _restored_accumulators(fresh, self.resume)
        acc["samples"] = jnp.zeros_like(acc["samples"])  # throughput is this process's: its window starts now
        return acc, list(self.resume.concats)

    def position(self, acc: dict, concats: list) -> EpochPosition:
        entries = [("/".join(k), v) for k, v in flatten(acc).items()]
        return EpochPosition(self.epoch, self.trainer.global_step - self.first_step, entries, list(concats))


# ----------------------------------------------------------------------------- saving
def request_save(trainer, saver) -> None:
    """Ask for a checkpoint at the next save point. ``saver`` implements ``decide(step) -> bool``,
    ``kept_steps() -> set``, ``pop_dropped() -> list`` and has ``save_optimizer_state``."""
    if saver not in trainer.save_requests:
        trainer.save_requests.append(saver)


def save_point(trainer, position: EpochPosition | None = None) -> None:
    """Run the requested saves; ``position`` is None when the epoch (with its validation) is complete."""
    requests, trainer.save_requests[:] = list(trainer.save_requests), []
    if not requests:
        return
    step = trainer.global_step
    wanted = [saver for saver in requests if saver.decide(step)]
    store = checkpoint_store(trainer)
    if wanted:
        state, meta, loop = capture(trainer, position, any(s.save_optimizer_state for s in wanted))
        store.save(step, state, meta, loop)
    savers = [cb for cb in trainer.callbacks if hasattr(cb, "kept_steps")]
    kept = set().union(*(s.kept_steps() for s in savers))
    for saver in savers:
        for old in saver.pop_dropped():
            if old not in kept:
                store.delete(old)


def capture(trainer, position: EpochPosition | None, with_optimizer: bool) -> tuple[dict, dict, dict | None]:
    """(state dict, JSON metadata, loop arrays or None) of the run as it stands."""
    backend = trainer.backend
    state = trainer.state if with_optimizer else backend.model_state(trainer.state)
    meta = {
        "format": FORMAT_VERSION,
        "backend": backend.name,
        "step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "batch": None if position is None else int(position.batch),
        "epoch_done": position is None,
        "should_stop": bool(trainer.should_stop),
        "has_optimizer": bool(with_optimizer),
        "callbacks": _callback_states(trainer),
        "logger": _jsonable("the logger", trainer.logger.state_dict()),
        "config_hash": config_hash(trainer.full_config),
        "versions": library_versions(),
    }
    loop = None
    if position is not None:
        meta["accumulators"] = [name for name, _ in position.acc]
        loop = {"acc": {str(i): value for i, (_, value) in enumerate(position.acc)}}
        if position.concats:
            meta["concats"] = [[n, list(values)] for n, values in position.concats]
            loop["concat"] = {
                str(i): {str(j): v for j, v in enumerate(values.values())}
                for i, (_, values) in enumerate(position.concats)
            }
    return backend.state_dict(state), meta, loop


def checkpoint_store(trainer) -> CheckpointStore:
    store = getattr(trainer, "_checkpoint_store", None)
    if store is None:
        _ensure_run_files(trainer)
        store = trainer._checkpoint_store = CheckpointStore(checkpoint_dir(trainer.log_dir))
    return store


def _ensure_run_files(trainer) -> None:
    """A trainer built in Python (not by ``jax-trainer fit``) gets its config.yaml and exmp_input.npz with
    its first checkpoint, so ``load_from_checkpoint`` can rebuild it from the run directory alone."""
    from jax_trainer.rundir import CONFIG_FILE, write_run_files  # pylint: disable=import-outside-toplevel

    if (Path(trainer.log_dir) / CONFIG_FILE).is_file():
        return
    config = dict(trainer.full_config or trainer._config_dict())
    module = type(trainer).__module__
    if not module.startswith("jax_trainer") and module != "__main__":
        config.setdefault("imports", [module])
    write_run_files(trainer.log_dir, config, trainer.exmp_input)


def finish_saves(trainer) -> None:
    """Block until every save of this trainer is on disk and release the manager."""
    store = getattr(trainer, "_checkpoint_store", None)
    if store is not None:
        store.close()  # waits for pending saves first
        trainer._checkpoint_store = None


def _wait_for_saves(trainer) -> None:
    store = getattr(trainer, "_checkpoint_store", None)
    if store is not None:
        store.wait()


# ----------------------------------------------------------------------------- restoring
def restore_run_state(trainer, ckpt_path) -> int:
    """Restore everything a resumed run needs; returns the epoch to continue with.

    ``"last"`` with no checkpoint yet starts from scratch (with a warning), like Lightning.
    """
    _wait_for_saves(trainer)
    path = resolve(ckpt_path, trainer.log_dir)
    if path is None:
        LOGGER.warning("ckpt_path='last': no checkpoint in %s yet; training starts from scratch.", trainer.log_dir)
        trainer.logger.load_state_dict({"last_step": None})
        return 1
    meta = read_meta(path)
    _check_compatible(trainer, meta, path)
    if not meta["has_optimizer"]:
        raise CheckpointError(
            f"Checkpoint {path} holds model weights only (save_optimizer_state: false), so training cannot "
            "resume from it exactly; load it with load_model_checkpoint() to evaluate or fine-tune."
        )
    tree = restore_tree(path, STATE, trainer.backend.state_dict(trainer.state))
    trainer.state = trainer.backend.load_state_dict(trainer.state, tree)
    trainer.global_step, trainer.current_epoch = meta["step"], meta["epoch"]
    trainer.should_stop = meta["should_stop"]
    _load_callback_states(trainer, meta["callbacks"], path)
    trainer.logger.load_state_dict(meta["logger"])
    _tidy_checkpoints(trainer, path, meta["step"])
    LOGGER.info("Resumed from %s (epoch %d, step %d).", path, meta["epoch"], meta["step"])
    if meta["epoch_done"]:
        return meta["epoch"] + 1
    loop = restore_raw(path, LOOP)
    acc = [(name, loop[("acc", str(i))]) for i, name in enumerate(meta["accumulators"])]
    concats = [
        (n, {key: loop[("concat", str(i), str(j))] for j, key in enumerate(keys)})
        for i, (n, keys) in enumerate(meta.get("concats", []))
    ]
    trainer.resume_position = EpochPosition(meta["epoch"], meta["batch"], acc, concats, path)
    return meta["epoch"]


def load_model_weights(trainer, ckpt_path) -> Path:
    """Replace the trainer's model state (weights, batch statistics) with a checkpoint's.

    The optimizer state is not loaded: a following ``train_model`` starts a fresh optimizer from these
    weights (fine-tuning). Works with full and weights-only checkpoints.
    """
    _wait_for_saves(trainer)
    path = resolve(ckpt_path, trainer.log_dir)
    if path is None:
        raise CheckpointError(f"No checkpoint in {checkpoint_dir(trainer.log_dir)}.")
    meta = read_meta(path)
    _check_compatible(trainer, meta, path)
    template = trainer.model_state
    tree = restore_tree(path, STATE, trainer.backend.state_dict(template), subset=meta["has_optimizer"])
    trainer._model_state = trainer.data_parallel.replicate(trainer.backend.load_state_dict(template, tree))
    trainer.state = None
    trainer.global_step, trainer.current_epoch = meta["step"], meta["epoch"]
    return path


def load_trainer(cls, path, log_dir: str | Path | None = None):
    """Rebuild a trainer from a run directory's ``config.yaml`` and ``exmp_input.npz`` and load weights.

    ``path`` is a checkpoint or a run directory (its newest checkpoint). The rebuilt trainer has no
    callbacks and no logging tools; its metric files go to ``log_dir`` (default ``<run>/eval``) so the
    run's own files stay untouched.
    """
    # pylint: disable=import-outside-toplevel  (jax_trainer.config imports this package)
    from jax_trainer.config import parse
    from jax_trainer.rundir import EXAMPLE_FILE, load_example_batch, read_config_dict
    from jax_trainer.run import build_trainer

    ckpt = resolve(path, None)
    run_dir = ckpt.parent.parent
    config = parse(read_config_dict(run_dir))
    trainer_config = config.trainer
    logger = dataclasses.replace(trainer_config.logger, log_dir=str(log_dir or run_dir / "eval"), tool_config=None)
    trainer_config = dataclasses.replace(trainer_config, logger=logger, callbacks={})
    config = dataclasses.replace(config, trainer=trainer_config)
    trainer = build_trainer(config, load_example_batch(run_dir / EXAMPLE_FILE), write_run_dir=False)
    if not isinstance(trainer, cls):
        raise TypeError(f"{run_dir} was trained with {type(trainer).__name__}, which is not a {cls.__name__}.")
    trainer.load_model_checkpoint(ckpt)
    return trainer


# ----------------------------------------------------------------------------- helpers
def config_hash(full_config: dict | None) -> str | None:
    if full_config is None:
        return None
    return hashlib.sha256(json.dumps(full_config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    found = {}
    for dist in _DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _jsonable(owner: str, value):
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise TypeError(f"The state_dict() of {owner} must be JSON-serialisable: {err}") from err


def _callback_names(trainer) -> list[str]:
    names = list(trainer.config.callbacks)
    extra = trainer.callbacks[len(names) :]
    return names + [f"{type(cb).__name__}#{i}" for i, cb in enumerate(extra, len(names))]


def _callback_states(trainer) -> dict:
    return {
        name: _jsonable(f"callback '{name}'", cb.state_dict())
        for name, cb in zip(_callback_names(trainer), trainer.callbacks)
    }


def _load_callback_states(trainer, states: dict, path: Path) -> None:
    for name, callback in zip(_callback_names(trainer), trainer.callbacks):
        if name in states:
            callback.load_state_dict(states[name])
        else:
            LOGGER.warning("Checkpoint %s has no state for callback '%s'; it starts fresh.", path, name)


def _check_compatible(trainer, meta: dict, path: Path) -> None:
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"Checkpoint {path} has format {meta['format']}; this version reads {FORMAT_VERSION}.")
    if meta["backend"] != trainer.backend.name:
        raise CheckpointError(
            f"Checkpoint {path} was written by the {meta['backend']} backend but this trainer runs "
            f"{trainer.backend.name}; convert it with `jax-trainer migrate` (jax_trainer.migrate)."
        )
    current = config_hash(trainer.full_config)
    if meta.get("config_hash") and current and meta["config_hash"] != current:
        LOGGER.warning("Checkpoint %s was written with a different config than this run's.", path)


def _restored_accumulators(fresh: dict, resume: EpochPosition) -> dict:
    flat = flatten(fresh)
    names = ["/".join(k) for k in flat]
    stored = [name for name, _ in resume.acc]
    if names != stored:
        raise CheckpointError(
            f"Checkpoint {resume.source} was taken inside epoch {resume.epoch} with other train metrics "
            f"({stored}) than this trainer computes ({names}); resume from an end-of-epoch checkpoint instead."
        )
    values = {}
    for (key, template), (name, value) in zip(flat.items(), resume.acc):
        if np.shape(value) != np.shape(template):
            raise CheckpointError(
                f"Checkpoint {resume.source}: train metric accumulator '{name}' has shape {np.shape(value)}, "
                f"expected {np.shape(template)}."
            )
        values[key] = jnp.asarray(value, dtype=template.dtype)
    return from_storage(fresh, values)


def _tidy_checkpoints(trainer, path: Path, step: int) -> None:
    """Bring the run's own checkpoint directory to what the uninterrupted run had at ``step``: steps after it
    belong to the abandoned continuation, and older ones no saver keeps were due for deletion at the kill."""
    own = checkpoint_dir(trainer.log_dir)
    if path.parent.resolve() != own.resolve():
        return
    savers = [cb for cb in trainer.callbacks if hasattr(cb, "kept_steps")]
    kept = set().union(*(s.kept_steps() for s in savers)) | {step}
    stale = [s for s in committed_steps(own) if s > step or (savers and s not in kept)]
    if stale:
        LOGGER.info("Removing checkpoints %s of %s left by the interrupted run.", stale, own)
        store = checkpoint_store(trainer)
        for old in stale:
            store.remove(old)
