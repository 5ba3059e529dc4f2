"""The run config: one YAML file (plus ``dotted.key=value`` overrides) parsed strictly with compoconf.

Everything is validated here, before any model is built, compiled or any file is written, and
errors name the dotted path of the offending field.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import compoconf
import yaml

from jax_trainer.datasets.interfaces import DatasetInterface
from jax_trainer.optimizer import OptimizerInterface
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.zoo.base import ModelConfig

LOGGER = logging.getLogger("jax_trainer")


class ConfigError(ValueError):
    """A bad config file, field or override; the message names the file or the dotted path."""


@dataclass
class Config:
    trainer: TrainerInterface.cfgtype
    model: ModelConfig
    optimizer: OptimizerInterface.cfgtype
    dataset: Optional[DatasetInterface.cfgtype] = None
    seed: int = 42
    num_gpus: Optional[int] = None
    imports: list[str] = field(default_factory=list)


def register_builtins() -> None:
    """Import the modules whose classes YAML may name, so compoconf can resolve them."""
    for module in ("trainer", "zoo", "optimizer", "datasets", "callbacks", "logger"):
        importlib.import_module(f"jax_trainer.{module}")


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping at the top level, got {type(data).__name__}.")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``a.b.c=value`` → ``data["a"]["b"]["c"] = yaml(value)``; the schema types and checks the value later."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override {override!r} must look like dotted.key=value.")
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override {override!r}: {'.'.join(parents[: i + 1])} is not a mapping.")
            node = child
        node[leaf] = yaml.safe_load(raw) if raw else ""
    return data


def import_user_modules(modules: list[str]) -> None:
    for i, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ConfigError(f"imports[{i}]: cannot import module {module!r} ({err}).") from err


def parse(data: dict) -> Config:
    """Strictly parse a config mapping; compoconf's errors are re-raised as ConfigError."""
    register_builtins()
    import_user_modules(list(data.get("imports") or []))
    try:
        return compoconf.parse_config(Config, data)
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"Invalid config: {err}") from err


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    return parse(apply_overrides(read_yaml(path), list(overrides or [])))


def to_dict(config: Config) -> dict[str, Any]:
    """Plain mapping of the resolved config (what ``config.yaml`` in the run directory holds)."""
    return compoconf.dump_config(config)


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
