"""Backend registry: ``model_mode`` → backend class. The only place a model mode is looked up.

Adding a backend is one file (a :class:`Backend` subclass with its model interface) plus one call
``register_backend("name", "package.module:Class")`` (or the class itself); see README, "Adding a backend".
"""

from __future__ import annotations

import importlib

import compoconf

from jax_trainer.backends.base import Backend
from jax_trainer.config_errors import ConfigError, parse_section

_BACKENDS: dict[str, str | type[Backend]] = {
    "linen": "jax_trainer.backends.linen:LinenBackend",
    "nnx": "jax_trainer.backends.nnx:NNXBackend",
}


def register_backend(name: str, target: str | type[Backend]) -> None:
    """Register a backend as ``"module:Class"`` (imported on first use, so the core never imports a framework it
    does not run) or as the class."""
    _BACKENDS[name] = target


def available_backends() -> list[str]:
    """The registered model modes."""
    return sorted(_BACKENDS)


def get_backend(model_mode: str) -> type[Backend]:
    """The backend class registered for ``model_mode``."""
    if model_mode not in _BACKENDS:
        raise ConfigError(f"unknown backend {model_mode!r}; available backends: {available_backends()}", "trainer.model_mode")
    target = _BACKENDS[model_mode]
    if isinstance(target, str):
        module, cls = target.split(":")
        target = getattr(importlib.import_module(module), cls)
    return target


def parse_model_config(model_mode: str, data):
    """The ``model:`` section parsed against the model interface of ``model_mode``'s backend: the models a config
    may name are those registered for the backend it runs."""
    interface = get_backend(model_mode).model_interface
    name = data.get("class_name") if isinstance(data, dict) else None
    registered = compoconf.registered(interface)
    elsewhere = []
    if isinstance(name, str) and name not in registered:
        elsewhere = [m for m in available_backends() if name in compoconf.registered(get_backend(m).model_interface)]
    if elsewhere:  # a name no backend knows gets the schema's "unknown class_name" error
        raise ConfigError(
            f"{name!r} has no {model_mode} implementation (it is registered for {elsewhere}); models registered "
            f"for {model_mode}: {registered}. Change trainer.model_mode or the model",
            "model.class_name",
        )
    return parse_section(interface.cfgtype, data, "model")


__all__ = ["Backend", "available_backends", "get_backend", "parse_model_config", "register_backend"]
