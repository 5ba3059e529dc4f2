"""Checks a raw config mapping against its dataclass schema so every error names its dotted path.

compoconf parses strictly, but an unknown ``class_name`` surfaces as a KeyError about a
``LazyConfigUnion`` and a config's own ``__post_init__`` check does not say where in the file it
failed. :func:`check` walks the YAML mapping alongside the annotations first and raises a
:class:`ConfigError` with the dotted path (``optimizer.learning_rate.decay_steps``) and what was
expected. It also types scalars by the schema, so ``3e-4`` (a string to YAML 1.1) or a command-line
override still becomes a float for a float field, while ``3.5`` for an int field is an error rather
than a silent truncation. The result is plain data that compoconf then parses.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import re
import types
import typing
from typing import Any, Literal, Union

import compoconf

from jax_trainer.errors import InputError

_NONE = type(None)
_CONTAINERS = (list, tuple, dict, set, frozenset)
_POST_INIT_ERRORS = (ValueError, TypeError, KeyError, AssertionError)


class ConfigError(InputError):
    """A bad config file, field or override; ``path`` is the dotted path of the field ("" for the file)."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__(message if not path or message.startswith(path) else f"{path}: {message}")


def parse_section(annotation: Any, value: Any, path: str) -> Any:
    """One section of a config (``trainer``, ``model``, ...) checked at ``path`` and built by compoconf."""
    return compoconf.parse_config(annotation, check(annotation, value, path), strict_types=True)


def import_modules(modules: list[str]) -> None:
    """Import the modules under ``imports:`` so the classes they ``@register`` resolve by class_name."""
    for i, module in enumerate(check(list[str], modules or [], "imports")):
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


def check(annotation: Any, value: Any, path: str = "") -> Any:
    """``value`` checked against ``annotation`` and normalised for compoconf; raises ConfigError at ``path``."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType) or _is_lazy_union(annotation):
        return _check_union(_members(annotation), value, path)
    if value is None:
        if annotation in (None, _NONE):
            return None
        raise ConfigError(f"expected {describe(annotation)}, got null", path)
    if origin is Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"expected one of {list(typing.get_args(annotation))}, got {value!r}", path)
        return value
    if origin in _CONTAINERS:
        return _check_container(origin, typing.get_args(annotation), value, path)
    if dataclasses.is_dataclass(annotation):
        return _check_dataclass(annotation, value, path)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _check_enum(annotation, value, path)
    if annotation in (bool, int, float, str):
        ok, converted = _coerce(annotation, value)
        if not ok:
            raise ConfigError(f"expected {describe(annotation)}, got {_shown(value)}", path)
        return converted
    return _check_other(annotation, value, path)


def describe(annotation: Any) -> str:
    """A short human name of what a field accepts."""
    if annotation in (None, _NONE):
        return "null"
    if annotation is Any:
        return "any value"
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        name = getattr(annotation, "class_name", "")
        return f"a {name or annotation.__name__} mapping"
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType) or _is_lazy_union(annotation):
        members = _members(annotation)
        configs = _config_classes(members)
        parts = [describe(m) for m in members if m not in configs.values()]
        if configs:
            parts.insert(0, f"a config with class_name one of {sorted(configs)}")
        return " or ".join(dict.fromkeys(parts)) or _describe_members([])
    if origin in _CONTAINERS:
        args = ", ".join(describe(a) for a in typing.get_args(annotation))
        return f"a {'mapping' if origin is dict else 'list'} of ({args})"
    if origin is Literal:
        return f"one of {list(typing.get_args(annotation))}"
    return getattr(annotation, "__name__", str(annotation))


# ----------------------------------------------------------------------------- unions


def _is_lazy_union(annotation: Any) -> bool:
    """compoconf's ``Interface.cfgtype`` (``__constraints__``) and ``cfgtype | X`` (``__args__`` without origin)."""
    if typing.get_origin(annotation) is not None or isinstance(annotation, type):
        return False
    return hasattr(annotation, "__constraints__") or hasattr(annotation, "__args__")


def _members(annotation: Any) -> list:
    """The flat member list of a (possibly nested, possibly lazy) union, resolved against the registry now."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        inner = typing.get_args(annotation)
    elif _is_lazy_union(annotation):
        inner = getattr(annotation, "__constraints__", None) or getattr(annotation, "__args__", ())
    else:
        return [_NONE if annotation is None else annotation]
    return list(dict.fromkeys(m for sub in inner for m in _members(sub)))


def _config_classes(members: list) -> dict[str, type]:
    """Registered config classes among union members, by ``class_name`` (the first wins, as in compoconf)."""
    found: dict[str, type] = {}
    for member in members:
        name = getattr(member, "class_name", None)
        if dataclasses.is_dataclass(member) and isinstance(name, str) and name:
            found.setdefault(name, member)
    return found


def _check_union(members: list, value: Any, path: str) -> Any:
    if value is None:
        if _NONE in members:
            return None
        raise ConfigError(f"expected {_describe_members(members)}, got null", path)
    configs = _config_classes(members)
    if isinstance(value, dict) and (configs or "class_name" in value):
        return _check_discriminated(configs, members, value, path)
    candidates = [m for m in members if m is not _NONE and m not in configs.values()]
    exact = [m for m in candidates if _is_exact(m, value)]
    errors = []
    for member in exact + [m for m in candidates if m not in exact]:
        try:
            return check(member, value, path)
        except ConfigError as err:
            errors.append(err)
    deeper = [e for e in errors if e.path != path]
    if deeper:  # the value had the right shape for a member and failed inside it: that error is the useful one
        raise deeper[0]
    raise ConfigError(f"expected {_describe_members(members)}, got {_shown(value)}", path)


def _check_discriminated(configs: dict[str, type], members: list, value: dict, path: str) -> Any:
    name = value.get("class_name")
    if name is None:
        plain = [m for m in members if typing.get_origin(m) is dict]
        if plain:
            return check(plain[0], value, path)
        if len(set(configs.values())) == 1:
            return check(next(iter(configs.values())), value, path)
        raise ConfigError(f"class_name is missing; expected one of {sorted(configs)}", path)
    if name not in configs:
        raise ConfigError(
            f"unknown class_name {name!r}{_did_you_mean(name, configs)}"
            + f"; registered for this field: {sorted(configs)}. A class of your own must be @register-ed "
            "in a module listed under `imports:`",
            _join(path, "class_name"),
        )
    return check(configs[name], value, path)


def _describe_members(members: list) -> str:
    if not members:
        return "a registered config (none is registered)"
    return describe(members[0]) if len(members) == 1 else describe(Union[tuple(members)])


def _is_exact(annotation: Any, value: Any) -> bool:
    """Whether ``value`` already has the member's type, so unions prefer it over a converting member."""
    if annotation in (bool, int, float, str):
        return type(value) is annotation
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and isinstance(value, origin)


# ----------------------------------------------------------------------------- scalars and leaves


def _coerce(annotation: type, value: Any) -> tuple[bool, Any]:
    """Convert where the meaning is unambiguous; never bool <-> number, never a lossy float -> int."""
    if isinstance(value, bool):
        return annotation is bool, value
    if annotation is bool:
        text = str(value).strip().lower() if isinstance(value, str) else None
        return text in ("true", "false"), text == "true"
    if annotation is str:
        return isinstance(value, (str, int, float)), str(value) if isinstance(value, (int, float)) else value
    number = value
    if isinstance(value, str):
        try:
            number = int(value) if annotation is int and re.fullmatch(r"\s*[-+]?\d+\s*", value) else float(value)
        except ValueError:
            return False, value
    if not isinstance(number, (int, float)):
        return False, value
    if annotation is float:
        return True, float(number)
    return (float(number).is_integer(), int(number)) if isinstance(number, float) else (True, number)


def _check_enum(annotation: type[enum.Enum], value: Any, path: str) -> Any:
    if isinstance(value, annotation) or value in annotation.__members__:
        return value
    if any(member.value == value for member in annotation):
        return value
    names = list(annotation.__members__)
    raise ConfigError(f"expected one of {names}, got {_shown(value)}", path)


def _check_other(annotation: Any, value: Any, path: str) -> Any:
    """Types this walk has no rule for (Path, datetime, ...): compoconf decides."""
    try:
        compoconf.parse_config(annotation, value, key_history=path)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"expected {describe(annotation)}, got {_shown(value)} ({err})", path) from err
    return value


def _check_container(origin: type, args: tuple, value: Any, path: str) -> Any:
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {_shown(value)}", path)
        key_type, value_type = args or (Any, Any)
        return {check(key_type, k, path): check(value_type, v, _join(path, str(k))) for k, v in value.items()}
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected a list, got {_shown(value)}", path)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"expected a list of {len(args)} items, got {len(value)}", path)
        return [check(a, v, _join(path, str(i))) for i, (a, v) in enumerate(zip(args, value))]
    item_type = args[0] if args else Any
    return [check(item_type, v, _join(path, str(i))) for i, v in enumerate(value)]


# ----------------------------------------------------------------------------- dataclasses


def _check_dataclass(cls: type, value: Any, path: str) -> dict:
    """Keys, class_name and field types first (each error at its own path); then compoconf builds the
    node, so a failing ``__post_init__`` is reported at the field its message names."""
    if not isinstance(value, dict):
        raise ConfigError(f"expected {describe(cls)}, got {_shown(value)}", path)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    own_name = getattr(cls, "class_name", None)
    if "class_name" in value and value["class_name"] != own_name:
        expected = f"{own_name!r}" if own_name else "no class_name"
        raise ConfigError(f"expected {expected}, got {value['class_name']!r}", _join(path, "class_name"))
    for key in value:
        if key != "class_name" and key not in fields:
            raise ConfigError(
                f"unknown key for {_type_name(cls)}{_did_you_mean(key, fields)}; expected one of {sorted(fields)}",
                _join(path, str(key)),
            )
    hints = typing.get_type_hints(cls)
    for name, f in fields.items():
        if name not in value and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"required field is missing (expected {describe(hints[name])})", _join(path, name))
    normalized = {key: check(hints[key], item, _join(path, key)) for key, item in value.items() if key in fields}
    if "class_name" in value:
        normalized["class_name"] = value["class_name"]
    try:
        compoconf.parse_config(cls, normalized, key_history=path, strict_types=True)
    except _POST_INIT_ERRORS as err:
        raise _attribute(err, cls, list(fields), path) from err
    return normalized


def error_at(err: Exception, config: Any, path: str) -> ConfigError:
    """A check of the config object ``config`` that failed after parsing (a schedule's length, known only when the
    optimizer is built) as a ConfigError at ``path`` (the field its message names first); a ConfigError from a part
    of ``config`` (its path relative to ``config``) gets ``path`` put in front."""
    if isinstance(err, ConfigError):
        full = _join(path, err.path)
        message = str(err)[len(err.path) :] if err.path and str(err).startswith(err.path) else f": {err}"
        return ConfigError(full + message, full)
    return _attribute(err, type(config), [f.name for f in dataclasses.fields(config)], path)


def _attribute(err: Exception, cls: type, fields: list[str], path: str) -> ConfigError:
    """A config's own check failed: put it at the field its message names first (else at the node)."""
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    hits = [(m.start(), name) for name in fields for m in [re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message)] if m]
    if not hits:
        return ConfigError(f"{_type_name(cls)}: {message}", path)
    field_name = min(hits)[1]
    field_path = _join(path, field_name)
    lead = re.match(rf"(?:\w+\.)*{re.escape(field_name)}(?!\w)", message)
    if lead:  # "WarmupCosineDecaySchedule.decay_steps (...)" -> "optimizer.learning_rate.decay_steps (...)"
        return ConfigError(field_path + message[lead.end() :], field_path)
    return ConfigError(message, field_path)


def _did_you_mean(name: Any, choices) -> str:
    by_lower = {c.lower(): c for c in choices}
    hint = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[hint[0]]!r}?)" if hint else ""


def _type_name(cls: type) -> str:
    return getattr(cls, "class_name", "") or cls.__name__


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
