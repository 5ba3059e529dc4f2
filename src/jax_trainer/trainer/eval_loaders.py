"""Validation and test loaders as the loop takes them: one loader, or several by name.

``train_model(train, val_loader={"clean": a, "noisy": b})`` evaluates every named loader at each validation (in
the dict's order) and reports their metrics together to the callbacks, keyed ``val/<name>/<metric>``
(``logger/keys.py``), so ``ModelCheckpoint`` and ``EarlyStopping`` may monitor any of them
(``monitor: val/noisy/acc``). A single loader keeps today's keys (``val/acc``). Lightning takes a list of
``val_dataloaders`` and adds ``/dataloader_idx_N`` to the keys; here the loaders are named instead.

Anything else is refused before anything is compiled, naming the argument and what it accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np

from jax_trainer.errors import InputError
from jax_trainer.logger import keys

ACCEPTED = "a loader (an iterable of batches, e.g. a NumpyLoader or a list of batches) or a dict name -> loader"


def check_loaders(owner: str, **loaders: Any) -> None:
    """Check every loader argument of ``owner`` (None: not given) before anything is compiled."""
    for argument, value in loaders.items():
        if value is not None:
            named_loaders(f"{owner}({argument}=...)", value)


def named_loaders(argument: str, value: Any) -> dict[str | None, Any]:
    """``value`` as ``{name: loader}``, the single unnamed loader under None.

    ``argument`` names the parameter in the errors (``train_model(val_loader=...)``). Names are used in metric keys,
    TensorBoard tags and file names (``keys.is_loader_name``).
    """
    if isinstance(value, Mapping):
        if not value:
            raise InputError(f"{argument}: an empty dict names no loader; expected {ACCEPTED}.")
        for name, loader in value.items():
            check_loader_name(argument, name)
            _check_loader(f"{argument}[{name!r}]", loader)
        return dict(value)
    _check_loader(argument, value)
    return {None: value}


def check_loader_name(where: str, name: Any) -> None:
    """A loader name as metric keys and file names can hold it, else an :class:`InputError` naming ``where``."""
    if not keys.is_loader_name(name):
        raise InputError(
            f"{where}: loader name {name!r} is not usable in metric keys and file names; "
            f"expected {keys.LOADER_NAME_RULE}."
        )


def _check_loader(where: str, loader: Any) -> None:
    """Refuse what cannot be a loader: not iterable, text, an array (iterating it yields rows, not batches), a dict."""
    if isinstance(loader, (str, bytes, Mapping, np.ndarray, jax.Array)) or not isinstance(loader, Iterable):
        raise InputError(f"{where}: expected {ACCEPTED}; got {type(loader).__name__}.")
