"""Checkpoints under the linen backend (scenarios in tests/checkpoint_scenarios.py)."""

from checkpoint_scenarios import *  # noqa: F401,F403
