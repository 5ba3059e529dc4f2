"""accumulate_grad_batches under the linen backend (scenario in tests/grad_accum_scenario.py)."""

from grad_accum_scenario import *  # noqa: F401,F403
