"""Every test in this folder runs under the linen backend: shared scenarios take the `mode` fixture."""

import pytest


@pytest.fixture
def mode() -> str:
    return "linen"
