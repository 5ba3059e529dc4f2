"""The ``config.yaml`` of a trainer built in Python (not by ``jax-trainer fit``): enough to rebuild it elsewhere.

``load_from_checkpoint`` in a new process parses that file, so it must name the trainer's own class and import every
module that registers a class the run uses: the trainer's, the model's, and those of any other configured class of
the user's (callbacks, schedules, logger tools, ...). Classes defined in ``__main__`` cannot be imported by another
process; they are left out (the run then reloads only where the same script has registered them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import compoconf


def python_run_config(trainer) -> dict:
    """The resolved configs of ``trainer`` as plain dicts, its class as ``trainer.class_name`` and the user modules
    under ``imports:``."""
    configs = {"trainer": trainer.config, "model": trainer.model_config, "optimizer": trainer.optimizer_config}
    data: dict[str, Any] = {name: compoconf.dump_config(cfg) for name, cfg in configs.items() if cfg is not None}
    cls = type(trainer)
    if _registered_under_own_name(cls):  # a MyTrainer run with an ImgClassifierTrainerConfig object is a MyTrainer run
        data["trainer"]["class_name"] = cls.__name__
    modules = [cls.__module__] + [m for cfg in configs.values() for m in _modules_of(cfg)]
    imports = [m for m in dict.fromkeys(modules) if not m.startswith("jax_trainer") and m != "__main__"]
    return {"imports": imports, **data} if imports else data


def _registered_under_own_name(cls: type) -> bool:
    return any(
        cls.__name__ in names and compoconf.Registry.get_class(interface, cls.__name__) is cls
        for interface, names in compoconf.registered().items()
    )


def _configs(value) -> Iterator[Any]:
    """Every config object in ``value`` (nested dataclasses, dicts, lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield value
        for field in dataclasses.fields(value):
            yield from _configs(getattr(value, field.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _configs(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _configs(item)


def _modules_of(config) -> Iterator[str]:
    """The modules of every config class in ``config`` and of the classes registered for them."""
    registries = compoconf.registered()
    for cfg in _configs(config):
        yield type(cfg).__module__
        name = getattr(cfg, "class_name", "")
        for interface, names in registries.items():
            if name and name in names:
                yield compoconf.Registry.get_class(interface, name).__module__
