"""train scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from train_scenarios import *  # noqa: F401,F403
