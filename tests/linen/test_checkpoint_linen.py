"""Checkpoints under the linen backend (scenarios shared with tests/nnx in tests/checkpoint_scenarios.py)."""

import pytest

import checkpoint_scenarios as scenarios

MODE = "linen"


def test_resume_is_exact(tmp_path):
    # resumes inside an epoch; tests/nnx covers the other case, tests/core/test_resume_kill.py both backends
    scenarios.resume_is_exact(MODE, tmp_path, crash_steps=(17,))


def test_top_k_and_best_model(tmp_path):
    scenarios.top_k_and_best_model(MODE, tmp_path)


def test_monitor_typo_lists_metrics(tmp_path):
    scenarios.monitor_typo_lists_metrics(MODE, tmp_path)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's aborted read coroutines
def test_damaged_checkpoints_name_the_entry(tmp_path):
    scenarios.damaged_checkpoints_name_the_entry(MODE, tmp_path)


def test_weights_only_checkpoints(tmp_path):
    scenarios.weights_only_checkpoints(MODE, tmp_path)
