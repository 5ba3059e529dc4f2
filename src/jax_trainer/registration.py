"""One config class per registered class: what keeps compoconf's registries from silently losing an entry.

compoconf finds a class's config class from its ``config`` annotation (or ``config_class``) and writes the class's
name into that config class's ``class_name`` when it is registered. One config class therefore names one class: a
second registered class with the same config class takes the name over, and the first can no longer be parsed or
built (``class_name: ImgClassifierTrainer`` stops resolving once ``MyTrainer(ImgClassifierTrainer)`` is registered
without a config of its own). The interfaces call :func:`claim_config` when a class is defined:

- a class that only *inherits* its config class from a registered parent gets a config class of its own,
  ``<Name>Config``, a subclass with the same fields, so subclassing never un-registers the parent;
- a class that *declares* a config class already registered for a class of another name (one config for a linen
  and an nnx model called differently) is a ``TypeError`` naming both classes. Classes of the same name may share a
  config class across registries: that is how a zoo model's one config resolves to its linen or nnx form.

Free of flax: the trainer and model interfaces both use it.
"""

from __future__ import annotations

import dataclasses
import typing

from compoconf import Registry, registered


def _declared_config(cls: type) -> tuple[type | None, bool]:
    """``(config class, declared by cls itself)``; None when it cannot be resolved yet (a forward reference)."""
    own = "config_class" in cls.__dict__ or "config" in cls.__dict__.get("__annotations__", {})
    candidate = cls.__dict__.get("config_class") or getattr(cls, "config_class", None)
    if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
        return candidate, own
    try:
        hint = typing.get_type_hints(cls).get("config")
    except Exception:  # pylint: disable=broad-except  # unresolvable annotations: compoconf reports them itself
        return None, own
    return (hint, own) if isinstance(hint, type) and dataclasses.is_dataclass(hint) else (None, own)


def _holder(config_class: type, interfaces: tuple[type, ...]) -> tuple[type, type] | None:
    """``(class, interface)`` of the registered class whose name ``config_class.class_name`` holds, if any."""
    name = getattr(config_class, "class_name", "")
    if not isinstance(name, str) or not name:
        return None
    for interface in interfaces:
        if Registry.has_registry(interface) and name in registered(interface):
            return Registry.get_class(interface, name), interface
    return None


def claim_config(cls: type, interfaces: tuple[type, ...]) -> None:
    """Give ``cls`` a config class no other registered class of another name holds (see the module docstring)."""
    config_class, own = _declared_config(cls)
    if config_class is None:
        return
    found = _holder(config_class, interfaces)
    if found is None or found[0].__name__ == cls.__name__:
        return
    holder, interface = found
    if own:
        raise TypeError(
            f"{cls.__module__}.{cls.__qualname__}: config class {config_class.__name__} is already the config class "
            f"of {holder.__module__}.{holder.__qualname__} (registered under {interface.__name__}); compoconf keeps "
            f"one class_name per config class, so registering {cls.__name__} with it would make "
            f"{holder.__name__!r} unreachable. Give {cls.__name__} its own config class, e.g. "
            f"`@dataclass class {cls.__name__}Config({config_class.__name__}): pass`, or give both classes the "
            f"same name (as the zoo's linen and nnx models do)."
        )
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": f"{cls.__qualname__}Config",
        "__doc__": f"Config of {cls.__name__}: the fields of {config_class.__name__} (its own class, so that "
        f"{holder.__name__} keeps {config_class.__name__}).",
        "class_name": "",  # not registered yet: the parent's name is not this class's
    }
    if config_class.__hash__ is not None:  # a dataclass subclass would reset an explicit __hash__ to None
        namespace["__hash__"] = config_class.__hash__
    derived = dataclasses.make_dataclass(f"{cls.__name__}Config", [], bases=(config_class,), namespace=namespace)
    cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), "config": derived}
    if getattr(cls, "config_class", None) is config_class:
        cls.config_class = derived
