"""Every public method and property of the classes users subclass or implement has a docstring of its own: the
trainer (``TrainerModule``), the callback base (``Callback``) and the backend protocol (``Backend``)."""

from __future__ import annotations

import inspect

import pytest

from jax_trainer.backends.base import Backend
from jax_trainer.callbacks import Callback
from jax_trainer.trainer import TrainerModule


def _undocumented(cls: type) -> list[str]:
    missing = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("_"):
            continue
        function = member.fget if isinstance(member, property) else member
        if not (inspect.isfunction(function) or inspect.ismethod(function)):
            continue
        if not (function.__doc__ or "").strip():
            missing.append(name)
    return missing


@pytest.mark.parametrize("cls", [TrainerModule, Callback, Backend], ids=lambda c: c.__name__)
def test_every_public_method_has_a_docstring(cls):
    assert _undocumented(cls) == []
