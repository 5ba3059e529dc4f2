"""callback scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from callback_scenarios import *  # noqa: F401,F403
