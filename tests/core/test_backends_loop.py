"""loop scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from loop_scenarios import *  # noqa: F401,F403
