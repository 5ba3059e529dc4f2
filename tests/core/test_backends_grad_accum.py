"""grad accum scenario under every registered backend (``mode`` from ``available_backends()``)."""

from grad_accum_scenario import *  # noqa: F401,F403
