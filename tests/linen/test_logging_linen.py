"""Logging end to end under the linen backend (scenarios in tests/logging_scenarios.py)."""

from logging_scenarios import *  # noqa: F401,F403
