"""The run config: one YAML file (plus ``dotted.key=value`` overrides) parsed strictly with compoconf.

Everything is checked here, before any model is built, compiled or any file is written, and every error is a
:class:`ConfigError` naming the dotted path of the offending field (see ``config_errors``). ``model:`` is parsed
against the model interface of the backend ``trainer.model_mode`` names, so a backend registered with
``register_backend`` brings its models to the config.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import compoconf
import yaml

import jax_trainer.callbacks  # noqa: F401  (registers the built-in callbacks and value policies)
import jax_trainer.datasets  # noqa: F401  (registers the built-in datasets)
import jax_trainer.logger.tools  # noqa: F401  (registers the logging tools)
import jax_trainer.trainer  # noqa: F401  (registers the built-in trainers)
from jax_trainer.backends import parse_model_config
from jax_trainer.config_errors import ConfigError, check, import_modules
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.optimizer import OptimizerInterface
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.tune.config import TuneConfig
from jax_trainer.yaml_strict import load_unique

__all__ = [
    "Config",
    "ConfigError",
    "apply_overrides",
    "dump_yaml",
    "load_config",
    "parse",
    "read_yaml",
    "set_path",
    "to_dict",
]


@dataclass
class Config:
    """The whole YAML file. ``imports`` are modules to import first so their registered classes resolve.

    ``model`` is the config of a model registered for the trainer's backend (see :func:`parse`). ``seed`` and
    ``num_gpus`` are the original jax_trainer's top-level fields, kept so its configs load and round-trip:
    initialisation and dropout follow ``trainer.seed``, shuffling ``dataset.seed``, and the trainer runs
    data-parallel over all local devices whatever ``num_gpus`` says. ``tune`` is the search space and study
    settings of ``jax-trainer tune``; training (``fit``) ignores it.
    """

    trainer: TrainerInterface.cfgtype
    model: Any
    optimizer: OptimizerInterface.cfgtype
    dataset: Optional[DatasetInterface.cfgtype] = None
    seed: int = 42
    num_gpus: Optional[int] = None
    imports: list[str] = field(default_factory=list)
    tune: Optional[TuneConfig] = None


def read_yaml(path: str | Path) -> dict:
    """A UTF-8 YAML file holding a mapping without duplicate keys, or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        ) from err
    try:
        data = load_unique(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """``a.b.c=value`` sets ``data["a"]["b"]["c"]`` (a list index where the node is a list) to the YAML
    reading of ``value``. Values are typed and checked by the schema afterwards, like the file's own."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not all(key.strip().split(".")):
            raise ConfigError(f"override {override!r} must look like dotted.key=value")
        set_path(data, key.strip(), _override_value(raw), f"override {override!r}: ")
    return data


def set_path(data: dict, dotted: str, value: Any, context: str = "") -> None:
    """``data[a][b][c] = value`` for ``a.b.c`` (list items by index, missing mappings created); raises a ConfigError
    at the path where the walk cannot go on, its message starting with ``context``."""
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{context}no item {part} in this list of {len(node)}", where)
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"{context}{'.'.join(parts[:i])} is {node!r}, not a mapping", where)
        if i == len(parts) - 1:
            node[part] = value
        elif isinstance(node, dict) and node.get(part) is None:
            node[part] = {}
        if i < len(parts) - 1:
            node = node[part]


def _override_value(raw: str) -> Any:
    if not raw:
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def parse(data: dict) -> Config:
    """Strictly parse a config mapping: check it field by field, then let compoconf build it; ``model`` last,
    against the model interface of ``trainer.model_mode``'s backend. A top-level ``seed`` (the original
    jax_trainer's) seeds ``trainer.seed`` and ``dataset.seed`` where those are not given."""
    import_modules(data.get("imports") or [])
    if "model" not in data:
        raise ConfigError("missing required field 'model'", "model")
    config = compoconf.parse_config(Config, check(Config, {**data, "model": None}), strict_types=True)
    mode = getattr(config.trainer, "model_mode", None)
    if mode is None:
        raise ConfigError("the trainer config has no model_mode: it must be a TrainerConfig", "trainer")
    config = dataclasses.replace(config, model=parse_model_config(mode, data["model"]))
    return _with_top_level_seed(config, data)


def _with_top_level_seed(config: Config, data: dict) -> Config:
    """``config`` with the top-level seed in the trainer's and the dataset's ``seed`` where the file gives none."""
    if "seed" not in data:
        return config
    seeded = {}
    for section in ("trainer", "dataset"):
        part, raw = getattr(config, section), data.get(section)
        if isinstance(raw, dict) and "seed" not in raw and any(f.name == "seed" for f in dataclasses.fields(part)):
            seeded[section] = dataclasses.replace(part, seed=config.seed)
    return dataclasses.replace(config, **seeded)


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override and parse a config file; errors name the file or the override they came from. ``imports:``
    resolve from the config file's folder first, then from the usual module path."""
    config_dir = str(Path(path).resolve().parent)
    if config_dir not in sys.path:
        sys.path.insert(0, config_dir)
    overrides = list(overrides)
    file_data = read_yaml(path)
    data = apply_overrides(copy.deepcopy(file_data), overrides)
    try:
        return parse(data)
    except ConfigError as err:
        raise ConfigError(f"{err} ({_origin(err.path, overrides, path, file_data)})", err.path) from err


def _origin(field_path: str, overrides: list[str], path: str | Path, file_data: dict) -> str:
    """Where the failing field came from: the last override that set it (or a section above it), or one below it
    only when the file itself lacks the field (the override created it); otherwise the file."""
    in_file = _has_path(file_data, field_path)
    for override in reversed(overrides):
        key = override.partition("=")[0].strip()
        below = key.startswith(field_path + ".") and not in_file
        if field_path and (key == field_path or field_path.startswith(key + ".") or below):
            return f"set by override {override!r}"
    return f"in {path}"


def _has_path(data: Any, dotted: str) -> bool:
    for part in dotted.split(".") if dotted else []:
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False
    return True


def to_dict(config: Config) -> dict[str, Any]:
    """Plain mapping of the resolved config (what ``config.yaml`` in the run directory holds); without a
    ``tune`` key when there is no tune: section, so configs without one dump (and hash) as before it existed."""
    data = compoconf.dump_config(config)
    if isinstance(data, dict) and data.get("tune", {}) is None:
        del data["tune"]
    trainer = data.get("trainer") if isinstance(data, dict) else None
    if isinstance(trainer, dict):
        trainer.pop("distributed", None)  # how the processes were launched, not what the run is: never recorded
        for key, default in _LATER_DEFAULTS.items():  # configs that do not use them dump (and hash) as before
            if trainer.get(key, default) == default:
                trainer.pop(key, None)
    return data


_LATER_DEFAULTS = {
    "mesh": None, "sharding_rules": [], "logical_axis_rules": [], "test_ckpt": "best", "ema": None,
    "precision": "fp32", "remat": False, "remat_policy": "nothing_saveable", "remat_segments": None,
}
"""Trainer fields added after format 2's first release, left out of the dump at their default."""


def dump_yaml(config: Config) -> str:
    """The resolved config as YAML."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
