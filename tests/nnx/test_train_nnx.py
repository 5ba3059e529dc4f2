"""Issue-2 training behaviours under the nnx backend (scenarios in tests/train_scenarios.py)."""

from train_scenarios import *  # noqa: F401,F403
