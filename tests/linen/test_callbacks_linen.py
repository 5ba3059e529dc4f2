"""Callbacks and value policies under the linen backend (scenarios in tests/callback_scenarios.py)."""

from callback_scenarios import *  # noqa: F401,F403
