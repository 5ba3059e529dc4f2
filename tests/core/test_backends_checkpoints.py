"""checkpoint scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from checkpoint_scenarios import *  # noqa: F401,F403
