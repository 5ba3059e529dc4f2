"""Every test in this folder runs under the nnx backend: shared scenarios take the `mode` fixture."""

import pytest


@pytest.fixture
def mode() -> str:
    return "nnx"
