"""The run config: one YAML file (plus ``dotted.key=value`` overrides) parsed strictly with compoconf.

Everything is checked here, before any model is built, compiled or any file is written, and every
error is a :class:`ConfigError` naming the dotted path of the offending field (see ``config_errors``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import compoconf
import yaml

from jax_trainer.backends import available_backends, get_backend
from jax_trainer.config_errors import ConfigError, check
from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.optimizer import OptimizerInterface
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.tune.config import TuneConfig
from jax_trainer.zoo.base import ModelConfig

BUILTIN_MODULES = ("trainer", "zoo", "optimizer", "datasets", "callbacks", "logger")

__all__ = ["Config", "ConfigError", "apply_overrides", "dump_yaml", "load_config", "parse", "to_dict"]


@dataclass
class Config:
    """The whole YAML file. ``imports`` are modules to import first so their registered classes resolve.

    ``seed`` and ``num_gpus`` are the original jax_trainer's top-level fields, kept so its configs load
    and round-trip: initialisation and dropout follow ``trainer.seed``, shuffling ``dataset.seed``, and
    the trainer runs data-parallel over all local devices whatever ``num_gpus`` says. ``tune`` is the
    search space and study settings of ``jax-trainer tune``; training (``fit``) ignores it.
    """

    trainer: TrainerInterface.cfgtype
    model: ModelConfig
    optimizer: OptimizerInterface.cfgtype
    dataset: Optional[DatasetInterface.cfgtype] = None
    seed: int = 42
    num_gpus: Optional[int] = None
    imports: list[str] = field(default_factory=list)
    tune: Optional[TuneConfig] = None


def register_builtins() -> None:
    """Import the modules whose classes YAML may name, so compoconf can resolve them."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"jax_trainer.{module}")


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
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
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"override {override!r} must look like dotted.key=value")
        node = data
        for i, part in enumerate(parts):
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {override!r}: no item {part} in this list of {len(node)}", where)
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {'.'.join(parts[:i])} is {node!r}, not a mapping", where)
            if i == len(parts) - 1:
                node[part] = _override_value(raw)
            elif isinstance(node, dict) and node.get(part) is None:
                node[part] = {}
            node = node[part]
    return data


def _override_value(raw: str) -> Any:
    if not raw:
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def import_user_modules(modules: list[str]) -> None:
    """Import the modules under ``imports:`` so the classes they ``@register`` resolve by class_name."""
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name and (module == err.name or module.startswith(err.name + ".")):
                raise ConfigError(
                    f"cannot import module {module!r}: not found (is it installed, or is its directory the "
                    "current one or on PYTHONPATH?)",
                    f"imports.{i}",
                ) from err
            raise ConfigError(f"importing {module!r} failed: {err}", f"imports.{i}") from err
        except Exception as err:  # user code: report where it came from; --debug shows the traceback
            raise ConfigError(f"importing {module!r} failed: {type(err).__name__}: {err}", f"imports.{i}") from err


def check_backend(config: Config) -> None:
    """``trainer.model_mode`` names a backend, and the model has an implementation for it."""
    mode = getattr(config.trainer, "model_mode", None)
    if mode is None:
        return
    backends = available_backends()
    if mode not in backends:
        raise ConfigError(f"unknown backend {mode!r}; available backends: {backends}", "trainer.model_mode")
    registry, name = get_backend(mode).model_interface, config.model.class_name
    if name not in compoconf.registered(registry):
        elsewhere = [m for m in backends if name in compoconf.registered(get_backend(m).model_interface)]
        raise ConfigError(
            f"{name!r} has no {mode} implementation (it is registered for {elsewhere}); "
            f"models registered for {mode}: {compoconf.registered(registry)}. Change trainer.model_mode or the model",
            "model.class_name",
        )


def parse(data: dict) -> Config:
    """Strictly parse a config mapping: check it field by field, then let compoconf build it."""
    register_builtins()
    import_user_modules(check(list[str], data.get("imports") or [], "imports"))
    config = compoconf.parse_config(Config, check(Config, data), strict_types=True)
    check_backend(config)
    return config


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read, override and parse a config file; errors name the file or the override they came from."""
    overrides = list(overrides)
    data = apply_overrides(read_yaml(path), overrides)
    try:
        return parse(data)
    except ConfigError as err:
        raise ConfigError(f"{err} ({_origin(err.path, overrides, path)})", err.path) from err


def _origin(field_path: str, overrides: list[str], path: str | Path) -> str:
    for override in reversed(overrides):
        key = override.partition("=")[0].strip()
        if field_path and (key == field_path or field_path.startswith(key + ".") or key.startswith(field_path + ".")):
            return f"set by override {override!r}"
    return f"in {path}"


def to_dict(config: Config) -> dict[str, Any]:
    """Plain mapping of the resolved config (what ``config.yaml`` in the run directory holds); without a
    ``tune`` key when there is no tune: section, so configs without one dump (and hash) as before it existed."""
    data = compoconf.dump_config(config)
    if isinstance(data, dict) and data.get("tune", {}) is None:
        del data["tune"]
    return data


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
