"""Several named val/test loaders under every registered backend (``mode`` from ``available_backends()``)."""

from eval_loader_scenarios import *  # noqa: F401,F403
