"""Shared test setup: ``tests/`` importable (scenario helpers), and the ``mode`` fixture over the registry."""

import sys
from pathlib import Path

import pytest

from jax_trainer.backends import available_backends

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(params=available_backends())
def mode(request) -> str:
    """Shared scenarios run under every registered backend (tests/linen and tests/nnx pin their own)."""
    return request.param
