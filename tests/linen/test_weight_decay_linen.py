"""WeightDecay on a linen MLP (the shared one-step test is in tests/weight_decay_scenarios.py)."""

from jax_trainer.optimizer import param_paths
from weight_decay_scenarios import *  # noqa: F401,F403
from weight_decay_scenarios import ALL_PATHS, flat, init_linen_params


def test_linen_param_paths():
    params = init_linen_params()
    assert set(flat(params)) == ALL_PATHS
    assert param_paths(params)["l1"]["kernel"] == "l1/kernel"
