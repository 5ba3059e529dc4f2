"""logging scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from logging_scenarios import *  # noqa: F401,F403
