"""Logging end to end under the linen backend (scenarios shared with tests/nnx in tests/logging_scenarios.py)."""

import logging_scenarios as scenarios

MODE = "linen"


def test_every_mode_matches_numpy(tmp_path):
    scenarios.every_mode_matches_numpy(MODE, tmp_path)


def test_tensorboard_csv_and_json_agree(tmp_path):
    scenarios.tensorboard_csv_and_json_agree(MODE, tmp_path)


def test_bad_metrics_fail_naming_the_metric(tmp_path):
    scenarios.bad_metrics_fail_naming_the_metric(MODE, tmp_path)
