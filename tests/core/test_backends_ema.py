"""EMA of the weights under every registered backend (``mode`` from ``available_backends()``)."""

from ema_scenarios import *  # noqa: F401,F403
