"""Step-loop contracts under the linen backend (scenarios in tests/loop_scenarios.py)."""

from loop_scenarios import *  # noqa: F401,F403
from loop_scenarios import compilation_cache_is_used


def test_compilation_cache_is_used(mode, tmp_path):
    compilation_cache_is_used(mode, tmp_path)
