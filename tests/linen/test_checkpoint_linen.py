"""Checkpoints under the linen backend (scenarios shared with tests/nnx in tests/checkpoint_scenarios.py)."""

import pytest

import checkpoint_scenarios as scenarios

MODE = "linen"


@pytest.mark.parametrize("crash_step", [17, 24])  # inside epoch 2; just after epoch 2's end-of-epoch save
def test_resume_is_exact(tmp_path, crash_step):
    scenarios.resume_is_exact(MODE, tmp_path, crash_step)


def test_top_k_and_best_model(tmp_path):
    scenarios.top_k_and_best_model(MODE, tmp_path)


def test_monitor_typo_lists_metrics(tmp_path):
    scenarios.monitor_typo_lists_metrics(MODE, tmp_path)


def test_damaged_checkpoints_name_the_entry(tmp_path):
    scenarios.damaged_checkpoints_name_the_entry(MODE, tmp_path)


def test_weights_only_checkpoints(tmp_path):
    scenarios.weights_only_checkpoints(MODE, tmp_path)
