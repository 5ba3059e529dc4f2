"""Turn a linen run's checkpoint into an nnx run directory for an nnx port of the model.

The new run directory gets the linen run's config with ``model_mode: nnx`` (and the nnx model config, if
given), its example input, and one checkpoint at the same step: parameters and batch statistics matched
by path (``zoo.convert.linen_to_nnx_state``), and unless ``weights_only`` the optimizer state, whose
per-parameter entries (Adam moments, ...) follow the same path mapping. The run state of the linen
checkpoint (epoch, data position, metric accumulators, callback and logger state) is carried over, so
``jax-trainer fit <out>/config.yaml --ckpt-path last`` continues training under nnx.

Paths are compared as ``/``-joined strings. Zoo models and ports that keep the linen submodule names
match as they are; for the rest a rename-rule file maps linen paths first: a YAML mapping (or list of
pairs) ``regex: replacement``, applied in order with ``re.sub`` to every parameter and batch-stat path.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import jax
import yaml
from flax import nnx

from jax_trainer.backends.base import OPTIMIZER
from jax_trainer.checkpoint import MODEL, find
from jax_trainer.checkpoint.reading import read_meta, restore_raw
from jax_trainer.checkpoint.rundir import EXAMPLE_FILE, load_example_batch, read_config_dict, write_run_files
from jax_trainer.checkpoint.run_state import check_format, config_hash, library_versions
from jax_trainer.checkpoint.store import LOOP, STATE, CheckpointStore, checkpoint_dir, locate
from jax_trainer.checkpoint.trees import flatten, from_storage, name, nest, subtree
from jax_trainer.config import parse, read_yaml, to_dict
from jax_trainer.errors import InputError
from jax_trainer.migrate.parity import parity_report
from jax_trainer.parallel.mesh import fitted
from jax_trainer.run import build_trainer
from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX
from jax_trainer.zoo.convert import linen_to_nnx_state

Rules = list[tuple[re.Pattern, str]]
_COLLECTIONS = ("params", "batch_stats")
_RULES_HINT = "; map the names with a rename-rule file (--rules)"


class MigrationError(InputError):
    """The linen checkpoint cannot be mapped onto the nnx model; the message names the entries."""


@dataclass
class Migration:
    """The result of :func:`migrate_run`: where it wrote, from what, and the parity report."""

    out_dir: Path
    source: Path
    checkpoint: Path
    optimizer_converted: bool
    parity: dict

    def report(self) -> dict:
        """The migration as JSON data (what ``jax-trainer migrate`` prints)."""
        return {
            "source": str(self.source),
            "checkpoint": str(self.checkpoint),
            "optimizer_state": self.optimizer_converted,
            "parity": self.parity,
        }


def load_rules(path: str | Path | None) -> Rules:
    """Rename rules from YAML: ``{regex: replacement}`` or ``[[regex, replacement], ...]``."""
    if path is None:
        return []
    data = yaml.safe_load(Path(path).read_text()) or {}
    pairs = data.items() if isinstance(data, dict) else data
    try:
        return [(re.compile(str(pattern)), str(replacement)) for pattern, replacement in pairs]
    except (ValueError, TypeError, re.error) as err:
        raise MigrationError(f"Rename rules {path}: expected regex -> replacement pairs ({err}).") from err


def rename(path: str, rules: Rules) -> str:
    """``path`` after every rule, in order."""
    for pattern, replacement in rules:
        path = pattern.sub(replacement, path)
    return path


def migrate_run(
    linen_run: str | Path,
    out_dir: str | Path,
    model: dict | None = None,
    rules: Rules | None = None,
    ckpt_path: str = "last",
    weights_only: bool = False,
    tolerance: float = 1e-5,
) -> Migration:
    """Convert ``ckpt_path`` of ``linen_run`` (a run directory or a checkpoint) into ``out_dir``; ``model`` is
    what :func:`read_model_config` returns (default: the linen run's model config)."""
    rules, out_dir = rules or [], Path(out_dir)
    source = find(linen_run, ckpt_path) if ckpt_path in ("last", "best") else locate(ckpt_path)
    meta = read_meta(source)
    check_format(meta, source)
    if meta["backend"] != "linen":
        raise MigrationError(f"Checkpoint {source} was written by the {meta['backend']} backend, not linen.")
    run_dir = source.parent.parent
    linen_config = parse(read_config_dict(run_dir))
    config = parse(_nnx_config_dict(read_config_dict(run_dir), out_dir, model))
    exmp = load_example_batch(run_dir / EXAMPLE_FILE)
    created = not out_dir.exists()  # a failed migration removes the folder it created, and only that one
    recorded = to_dict(config)  # the run keeps its mesh; the conversion runs on this process's devices
    here = dataclasses.replace(config.trainer, mesh=fitted(config.trainer.mesh, jax.device_count()))
    trainer = build_trainer(dataclasses.replace(config, trainer=here), exmp, write_run_dir=False)
    status = "failed"
    try:
        stored = restore_raw(source, STATE)
        linen_variables = nest(subtree(stored, (MODEL,)))
        renamed, param_map = _renamed({k: linen_variables.get(k, {}) for k in _COLLECTIONS}, rules)
        inputs = trainer.batch_to_input(exmp)
        nnx_model = _convert_model(config, renamed, inputs, source, hint="" if rules else _RULES_HINT)
        with_optimizer = meta["has_optimizer"] and not weights_only
        tree = {MODEL: trainer.backend.model_state_dict(nnx.state(nnx_model))}
        if with_optimizer:
            tree[OPTIMIZER] = _converted_optimizer(trainer, stored, param_map, source)
        out_meta = {
            **meta,
            "backend": trainer.backend.name,
            "has_optimizer": with_optimizer,
            "best_step": meta["step"] if meta.get("best_step") == meta["step"] else None,
            "config_hash": config_hash(recorded),
            "versions": library_versions(),
            "migrated_from": str(source),
        }
        loop = nest(restore_raw(source, LOOP)) if with_optimizer and not meta["epoch_done"] else None
        store = CheckpointStore(checkpoint_dir(out_dir))
        store.save(meta["step"], tree, out_meta, loop)
        store.close()
        linen_module = linen_config.model.instantiate(BaseModelLinen)
        parity = parity_report(linen_module, linen_variables, nnx_model, inputs, tolerance)
        write_run_files(out_dir, recorded, exmp)
        status = "success"
    finally:
        trainer.logger.finalize(status)
        if status != "success" and created:
            shutil.rmtree(out_dir, ignore_errors=True)
    checkpoint = checkpoint_dir(out_dir) / str(meta["step"])
    (out_dir / "parity.json").write_text(json.dumps(parity, indent=2))
    return Migration(out_dir, source, checkpoint, with_optimizer, parity)


def read_model_config(path: str | Path) -> dict:
    """The nnx model from YAML: ``{"model": {...}, "imports": [...]}`` (``imports`` optional, for the
    modules registering the model), or the model block alone."""
    data = read_yaml(path)
    if "model" not in data:
        return {"model": data}
    unknown = set(data) - {"model", "imports"}
    if unknown:
        raise MigrationError(f"{path}: unexpected keys {sorted(unknown)}; expected `model:` and optional `imports:`.")
    return data


def _nnx_config_dict(linen_dict: dict, out_dir: Path, model: dict | None) -> dict:
    data = copy.deepcopy(linen_dict)
    data["trainer"]["model_mode"] = "nnx"
    data["trainer"].setdefault("logger", {})["log_dir"] = str(out_dir)
    if model is not None:
        data["model"] = copy.deepcopy(model["model"])
        imports = list(data.get("imports") or [])
        data["imports"] = imports + [m for m in model.get("imports") or [] if m not in imports]
    return data


def _convert_model(config, renamed: dict, inputs, source: Path, hint: str) -> nnx.Module:
    """The nnx model (built as the trainer builds it, same seed) holding the (renamed) linen variables; its other
    variables (rng state) keep their initial values."""
    model = config.model.instantiate(BaseModelNNX, rngs=nnx.Rngs(config.trainer.seed), exmp_input=inputs)
    try:
        linen_to_nnx_state(renamed, model)
    except (KeyError, ValueError) as err:
        raise MigrationError(f"Checkpoint {source} does not fit the nnx model: {err.args[0]}{hint}.") from err
    model.eval()
    return model


def _renamed(linen_vars: dict, rules: Rules) -> tuple[dict, dict]:
    """The linen variables under their nnx names, and nnx → linen for every parameter path."""
    renamed, param_map = {}, {}
    for collection, tree in linen_vars.items():
        flat = {}
        for key, value in flatten(tree).items():
            new = tuple(rename(name(key), rules).split("/"))
            if new in flat:
                raise MigrationError(f"Rename rules map two {collection} entries onto '{name(new)}'.")
            flat[new] = value
            if collection == "params":
                param_map[new] = key
        renamed[collection] = nest(flat)
    return renamed, param_map


def _converted_optimizer(trainer, stored: dict, param_map: dict, source: Path) -> dict:
    """The nnx ``optimizer`` tree from the linen checkpoint's: per-parameter entries (Adam moments, ...) follow the
    parameter's renaming, the others (step, counts, hyperparameters) keep their path."""
    # The schedule length only shapes values, never the state's structure; it is rebuilt when training resumes.
    trainer.init_optimizer(1, 2**30)
    template = trainer.backend.state_dict(trainer.state)[OPTIMIZER]
    values = {}
    for key, leaf in flatten(template).items():
        if key[:1] == ("opt_state",):
            linen_key = (OPTIMIZER, "opt_state", *_linen_suffix(key[1:], param_map))
        else:
            linen_key = (OPTIMIZER, *key)
        if linen_key not in stored:
            raise MigrationError(
                f"Checkpoint {source}: optimizer entry '{name(linen_key)}' (for nnx '{name((OPTIMIZER, *key))}') is "
                "missing; was the optimizer config changed? Use --weights-only to convert the weights alone."
            )
        value = stored[linen_key]
        if value.shape != leaf.shape:
            raise MigrationError(
                f"Checkpoint {source}: optimizer entry '{name(linen_key)}' has shape {value.shape}, "
                f"nnx '{name((OPTIMIZER, *key))}' expects {leaf.shape}."
            )
        values[key] = value.astype(leaf.dtype)
    return from_storage(template, values)


def _linen_suffix(path: tuple[str, ...], param_map: dict) -> tuple[str, ...]:
    for i in range(len(path)):
        if path[i:] in param_map:
            return path[:i] + param_map[path[i:]]
    return path
