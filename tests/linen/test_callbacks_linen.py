"""Value policies and step extras under the linen backend (the loss-function paths that differ from nnx)."""

import callback_scenarios as sc

MODE = "linen"


def test_gradient_spike(tmp_path):
    sc.gradient_spike(MODE, tmp_path)


def test_value_policy(tmp_path):
    sc.value_policy(MODE, tmp_path)
