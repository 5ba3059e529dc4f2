"""The interface every logging tool implements, and the helpers the tools share.

A tool receives host values only (floats, uint8 images, plain config dicts): the `Logger` validates and
converts them once, so a tool is a thin translation into one file format or service.
"""

import abc
import json
import math
import time
from pathlib import Path
from typing import Any

from compoconf import RegistrableConfigInterface, register_interface


@register_interface
class ToolLoggerInterface(RegistrableConfigInterface, abc.ABC):
    """A writer for one logging backend, built as ``config.instantiate(ToolLoggerInterface, log_dir)``.

    ``log_dir`` is the run directory; a tool writes there unless its config explicitly points elsewhere.
    """

    @abc.abstractmethod
    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        """Write host floats at ``step``."""

    @abc.abstractmethod
    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Record the resolved (nested) config; ``metrics`` (e.g. final results) are shown next to it."""

    @abc.abstractmethod
    def log_image(self, key: str, image, step: int) -> None:
        """Write an (H, W, C) uint8 image, C in {1, 3, 4}."""

    def resume(self, step: int) -> None:
        """Continue a run restored at ``step``: data written after it by the interrupted run is stale."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Push buffered data to disk."""

    @abc.abstractmethod
    def close(self, status: str = "success") -> None:
        """Flush and release the writer; ``status`` is "success", "failed" or "interrupted"."""


def tool_dir(
    log_dir: Path, save_dir: str = "", name: str = "", version: str | None = None, use_timestamp_version: bool = False
) -> Path:
    """``(save_dir or log_dir)/name/version``, leaving out the parts that are not set.

    With nothing set a tool writes straight into the run directory. ``use_timestamp_version`` gives every
    launch its own sub-directory (only when ``version`` is not set).
    """
    path = Path(save_dir) if save_dir else Path(log_dir)
    if name:
        path = path / name
    version = run_version(version, use_timestamp_version)
    if version:
        path = path / version
    return path


def run_version(version: str | None, use_timestamp_version: bool) -> str | None:
    """``version`` as given, else the launch time (``20261122-093000``) when ``use_timestamp_version``."""
    if not version and use_timestamp_version:
        return time.strftime("%Y%m%d-%H%M%S")
    return version or None


def hparam_value(value: Any) -> bool | int | float | str:
    """A value TensorBoard's hparams plugin accepts: numbers and strings as they are, the rest as JSON text."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return hparam_value(value.item())
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys (``optimizer.learning_rate.peak_value``); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = value
    return flat


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of a config dict (unknown objects become their ``str``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return str(value)
