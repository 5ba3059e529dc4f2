"""Backend registry: ``model_mode`` → backend class. The only place a model mode is looked up."""

from __future__ import annotations

import importlib

from jax_trainer.backends.base import Backend

_BACKENDS = {"linen": "jax_trainer.backends.linen:LinenBackend", "nnx": "jax_trainer.backends.nnx:NNXBackend"}


def register_backend(name: str, target: str) -> None:
    """Register a backend as ``"module:Class"`` (imported lazily so the core never imports flax models)."""
    _BACKENDS[name] = target


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(model_mode: str) -> type[Backend]:
    if model_mode not in _BACKENDS:
        raise ValueError(f"trainer.model_mode: unknown backend {model_mode!r}; expected one of {available_backends()}.")
    module, cls = _BACKENDS[model_mode].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["Backend", "available_backends", "get_backend", "register_backend"]
