"""predict scenarios under every registered backend (``mode`` from ``available_backends()``)."""

from predict_scenarios import *  # noqa: F401,F403
