"""The Checkpointer: the one object through which a trainer saves, restores and prunes checkpoints.

Checkpoints are written at *save points*: between two train steps (after every callback saw the last one) or when
an epoch is complete (after its validation and the callbacks of both). A policy asks for a save with
:meth:`Checkpointer.request_save` from any hook; the loop runs it at the next save point. So a checkpoint is
consistent: every callback and the logger have processed exactly the steps it holds, whichever order the callbacks
run in. A step-triggered save that lands on an epoch's last step is therefore written once the epoch is complete,
and a resumed epoch always has batches left.

The checkpointer knows the run only through what it is given: the log directory, the backend's name, the
resolved config, the stateful components (the callbacks by name, the logger) and, at each save point, the run's
:class:`~jax_trainer.checkpoint.run_state.Progress` and a function producing its state tree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, NamedTuple

from jax_trainer.checkpoint.errors import CheckpointError, DamagedCheckpointError
from jax_trainer.checkpoint.policy import CheckpointPolicy
from jax_trainer.checkpoint.reading import read_meta, restore_raw, restore_tree
from jax_trainer.checkpoint.run_state import (
    EpochPosition,
    Progress,
    build_meta,
    check_format,
    config_changes,
    config_hash,
    library_versions,
    read_position,
    strict_json,
)
from jax_trainer.checkpoint.store import (
    CHECKPOINT_DIR,
    LOOP,
    MODEL,
    STATE,
    CheckpointStore,
    checkpoint_dir,
    committed_steps,
    locate,
    newest,
)
from jax_trainer.parallel.runtime import barrier, is_main_process

LOGGER = logging.getLogger("jax_trainer")
ABANDONED_DIR = "abandoned"
"""Inside a run directory: checkpoints of a continuation abandoned by resuming from an earlier checkpoint."""


class Restored(NamedTuple):
    """A checkpoint read back for a resumed run: the state tree, the progress and, inside an epoch, the position."""

    tree: dict
    progress: Progress
    position: EpochPosition | None
    path: Path

    @property
    def next_epoch(self) -> int:
        """The epoch the loop continues with: the same one when the checkpoint was taken inside it."""
        return self.progress.epoch + (1 if self.position is None else 0)


def resolve(ckpt_path: str | Path, log_dir: str | Path | None) -> Path | None:
    """A checkpoint directory from ``"last"`` (the newest in ``log_dir``; None if there is none), ``"best"`` (the
    best step the policies recorded in the newest), a step directory, a run directory or a ``checkpoints`` folder."""
    which = str(ckpt_path)
    if which not in ("last", "best"):
        return locate(ckpt_path)
    if log_dir is None:
        raise CheckpointError(f"ckpt_path={which!r} needs a run directory.")
    last = newest(log_dir)
    return last if last is None or which == "last" else _best_of(last)


def find(path: str | Path, which: str = "last") -> Path:
    """A checkpoint from a step directory (itself) or from a run or ``checkpoints`` directory (its ``which``:
    ``"last"`` or ``"best"``)."""
    if which not in ("last", "best"):
        raise CheckpointError(f"which={which!r}: expected 'last' or 'best'.")
    path = Path(path)
    if path.name.isdigit():
        return locate(path)
    run = path.parent if path.name == CHECKPOINT_DIR else path
    found = resolve(which, run)
    if found is None:
        raise CheckpointError(f"No checkpoint in {checkpoint_dir(run)}.")
    return found


def _best_of(last: Path) -> Path:
    """The best checkpoint recorded in ``last``'s metadata: a step number in the same folder, never a path."""
    best = read_meta(last).get("best_step")
    if type(best) is not int:  # pylint: disable=unidiomatic-typecheck  (bool is an int; a string could be a path)
        raise CheckpointError(
            f"Checkpoint {last} records no best checkpoint: ckpt_path='best' needs a ModelCheckpoint with a monitor."
        )
    path = last.parent / str(best)
    if best not in committed_steps(last.parent):
        raise CheckpointError(f"The best checkpoint recorded in {last}, {path}, does not exist.")
    return path


class Checkpointer:
    """Saves and restores one run's checkpoints under ``<log_dir>/checkpoints``.

    ``callbacks()`` (name → callback, asked at each use, so callbacks added later count) and ``logger`` have their
    ``state_dict()`` saved and loaded; the callbacks that are :class:`CheckpointPolicy` instances decide what is
    written and kept. ``write_run_files`` is called before the first save (a trainer built in Python gets its
    ``config.yaml`` and example input then).
    """

    def __init__(
        self,
        log_dir: str | Path,
        backend_name: str,
        full_config: dict | None,
        callbacks: Callable[[], dict[str, Any]],
        logger,
        write_run_files: Callable[[], None],
    ):
        self.log_dir, self.directory = Path(log_dir), checkpoint_dir(log_dir)
        self.backend_name, self.full_config, self.config_hash = backend_name, full_config, config_hash(full_config)
        self.callbacks, self.logger = callbacks, logger
        self._write_run_files = write_run_files
        self._requests: list[CheckpointPolicy] = []
        self._store: CheckpointStore | None = None
        self._superseded: int | None = None  # the resumed checkpoint of an interrupted run (deleted when replaced)
        self._written: int | None = None  # the step of this process's latest save

    @property
    def policies(self) -> list[CheckpointPolicy]:
        """The callbacks that decide what is written and kept."""
        return [cb for cb in self.callbacks().values() if isinstance(cb, CheckpointPolicy)]

    # ----------------------------------------------------------------- saving
    def request_save(self, policy: CheckpointPolicy) -> None:
        """Ask for a checkpoint at the next save point."""
        if policy not in self._requests:
            self._requests.append(policy)

    def is_requested(self, policy: CheckpointPolicy | None = None) -> bool:
        """Whether a save (by ``policy``, or by anyone) waits for the next save point."""
        return policy in self._requests if policy is not None else bool(self._requests)

    def save_point(self, progress: Progress, state_tree: Callable[[bool], dict], position: EpochPosition | None = None):
        """Run the requested saves. ``state_tree(with_optimizer)`` gives the backend's state tree (the model alone,
        under ``model``, without optimizer); ``position`` is None when the epoch (with its validation) is complete."""
        requests, self._requests = self._requests, []
        if not requests:
            return
        wanted = [policy for policy in requests if policy.decide(progress.step)]
        store = self._open()
        if wanted:
            with_optimizer = any(policy.save_optimizer_state for policy in wanted)
            self._write(progress, state_tree(with_optimizer), position, with_optimizer)
        policies = self.policies
        kept = self._kept_steps(policies)
        for policy in policies:
            for old in policy.pop_dropped():
                if old not in kept:
                    store.delete(old)

    def save_interrupted(self, progress: Progress, state_tree: Callable[[bool], dict], position: EpochPosition | None):
        """The checkpoint of a run stopped by a signal: the exact position, with the optimizer, whatever the policies
        decide (they keep their own checkpoints). It becomes ``last``; once the resumed run's next checkpoint is
        committed it is deleted. Nothing is written when the run has no policy, or when a checkpoint of
        ``progress.step`` exists or is being written. Returns that checkpoint's directory, or None."""
        path = self.directory / str(progress.step)
        if progress.step == self._written or progress.step in committed_steps(self.directory):
            return path
        if not self.policies:
            return None
        self._open()
        self._write(progress, state_tree(True), position, with_optimizer=True, interrupted=True)
        return path

    def _write(self, progress, tree: dict, position, with_optimizer: bool, interrupted: bool = False) -> None:
        entries = {**self._meta_entries(), "interrupted": interrupted}
        meta, loop = build_meta(progress, position, with_optimizer, entries)
        self._store.save(progress.step, tree, meta, loop)
        self._written = progress.step
        if self._superseded is not None:  # the interrupted run's checkpoint goes once this one is committed
            self._store.delete(self._superseded)
            self._superseded = None

    def wait(self) -> None:
        """Block until every save is on disk."""
        if self._store is not None:
            self._store.wait()

    def close(self) -> None:
        """Wait for the saves and release orbax's manager (reopened by the next save)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # ----------------------------------------------------------------- restoring
    def restore(self, ckpt_path, template: dict) -> Restored | None:
        """Everything a resumed run needs from ``ckpt_path`` (``template``: the live state tree); the callbacks' and
        the logger's states are loaded here, after every array was read and verified. ``"last"`` with no checkpoint
        yet gives None (start from scratch); a damaged ``last`` falls back to the newest intact checkpoint."""

        def read(path: Path):
            meta = self._compatible_meta(path)
            if not meta["has_optimizer"]:
                raise CheckpointError(
                    f"Checkpoint {path} holds model weights only (save_optimizer_state: false), so training cannot "
                    "resume from it exactly; load it with load_model_checkpoint() to evaluate or fine-tune."
                )
            sums = meta.get("checksums", {})
            tree = restore_tree(path, STATE, template, checksums=sums.get(STATE))
            position = None
            if not meta["epoch_done"]:
                position = read_position(meta, restore_raw(path, LOOP, checksums=sums.get(LOOP)), path)
            return meta, tree, position

        found = self._read_intact(ckpt_path, read)
        if found is None:
            LOGGER.warning("ckpt_path=%r: no checkpoint in %s yet; training starts from scratch.", ckpt_path, self.log_dir)
            self.logger.load_state_dict({"last_step": None})
            return None
        path, (meta, tree, position) = found
        self._load_states(meta, path)
        self._tidy(path, meta["step"])
        if meta.get("interrupted"):
            self._superseded = meta["step"]
        LOGGER.info("Resumed from %s (epoch %d, step %d).", path, meta["epoch"], meta["step"])
        return Restored(tree, Progress(meta["step"], meta["epoch"], meta["should_stop"]), position, path)

    def load_weights(self, ckpt_path, model_template: dict) -> tuple[dict, Progress, Path]:
        """The model tree of a checkpoint (full or weights-only) in the structure of ``model_template``."""

        def read(path: Path):
            meta = self._compatible_meta(path)
            sums = meta.get("checksums", {}).get(STATE)
            return meta, restore_tree(path, STATE, model_template, part=(MODEL,), checksums=sums)

        found = self._read_intact(ckpt_path, read)
        if found is None:
            raise CheckpointError(f"No checkpoint in {self.directory}.")
        path, (meta, tree) = found
        return tree, Progress(meta["step"], meta["epoch"], meta["should_stop"]), path

    def _read_intact(self, ckpt_path, read: Callable[[Path], Any]):
        """``(path, read(path))`` for ``ckpt_path``; for ``"last"`` the newest checkpoint that reads intact, each
        damaged one named in a warning. None when ``"last"`` finds no checkpoint; an error when all are damaged."""
        self.wait()
        path = resolve(ckpt_path, self.log_dir)
        if path is None or str(ckpt_path) != "last":
            return None if path is None else (path, read(path))
        damaged = []
        for step in reversed(committed_steps(self.directory)):
            candidate = self.directory / str(step)
            try:
                return candidate, read(candidate)
            except DamagedCheckpointError as err:
                LOGGER.warning("%s Falling back to the checkpoint before it.", err)
                damaged.append(str(candidate))
        raise CheckpointError(f"Every checkpoint in {self.directory} is damaged: {damaged}; not starting from scratch.")

    # ----------------------------------------------------------------- helpers
    def _open(self) -> CheckpointStore:
        if self._store is None:
            self._write_run_files()
            self._store = CheckpointStore(self.directory)
        return self._store

    def _meta_entries(self) -> dict:
        best = [step for step in (policy.best_step() for policy in self.policies) if step is not None]
        callbacks = self.callbacks()
        return {
            "backend": self.backend_name,
            "best_step": best[0] if best else None,
            "callbacks": {name: strict_json(f"callback '{name}'", cb.state_dict()) for name, cb in callbacks.items()},
            "logger": strict_json("the logger", self.logger.state_dict()),
            "config_hash": self.config_hash,
            "config": strict_json("the config", self.full_config),
            "versions": library_versions(),
        }

    @staticmethod
    def _kept_steps(policies: list[CheckpointPolicy]) -> set[int]:
        return set().union(*(policy.kept_steps() for policy in policies))

    def _compatible_meta(self, path: Path) -> dict:
        meta = read_meta(path)
        check_format(meta, path)
        if meta["backend"] != self.backend_name:
            raise CheckpointError(
                f"Checkpoint {path} was written by the {meta['backend']} backend but this trainer runs "
                f"{self.backend_name}; convert it with `jax-trainer migrate` (jax_trainer.migrate)."
            )
        if meta.get("config_hash") and self.config_hash and meta["config_hash"] != self.config_hash:
            changes = config_changes(meta.get("config"), self.full_config)
            LOGGER.warning("Checkpoint %s was written with a different config: %s.", path, changes or "(not recorded)")
        return meta

    def _load_states(self, meta: dict, path: Path) -> None:
        for name, callback in self.callbacks().items():
            if name in meta["callbacks"]:
                callback.load_state_dict(meta["callbacks"][name])
            else:
                LOGGER.warning("Checkpoint %s has no state for callback '%s'; it starts fresh.", path, name)
        self.logger.load_state_dict(meta["logger"])

    def _tidy(self, path: Path, step: int) -> None:
        """Bring the run's own checkpoint folder to what the uninterrupted run had at ``step``. Older checkpoints no
        policy keeps were due for deletion at the kill and go; newer ones (a resume from an older checkpoint, or
        past a damaged one) are never deleted: they move to ``<log_dir>/abandoned/`` with a warning."""
        if path.parent.resolve() != self.directory.resolve():
            return
        policies = self.policies
        kept = self._kept_steps(policies) | {step}
        later = [s for s in committed_steps(self.directory) if s > step]
        stale = [s for s in committed_steps(self.directory) if s < step and policies and s not in kept]
        barrier("jax_trainer-tidy-listed")  # every process has listed before process 0 moves anything
        if later and is_main_process():
            aside = self.log_dir / ABANDONED_DIR
            aside.mkdir(exist_ok=True)
            moved = [_move_aside(self.directory / str(s), aside) for s in later]
            LOGGER.warning("Resuming from step %d: the later checkpoints %s moved to %s.", step, later, aside)
            LOGGER.debug("Moved: %s", moved)
        if stale:
            LOGGER.info("Removing checkpoints %s of %s left by the interrupted run.", stale, self.directory)
            store = self._open()
            for old in stale:
                store.remove(old)
        barrier("jax_trainer-tidy-moved")
        if later:
            self._open().manager.reload()


def _move_aside(path: Path, folder: Path) -> Path:
    """Rename ``path`` into ``folder`` (one rename: never half moved), under a free name."""
    target, n = folder / path.name, 1
    while target.exists():
        target, n = folder / f"{path.name}.{n}", n + 1
    path.rename(target)
    return target
