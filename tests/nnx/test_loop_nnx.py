"""Step-loop contracts under the nnx backend (scenarios in tests/loop_scenarios.py)."""

from loop_scenarios import *  # noqa: F401,F403
