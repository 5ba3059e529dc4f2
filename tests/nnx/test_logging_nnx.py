"""Logging end to end under the nnx backend (scenarios shared with tests/linen in tests/logging_scenarios.py).

Progress bars and train.log verbosity do not depend on the backend; they run here only.
"""

import logging_scenarios as scenarios

MODE = "nnx"


def test_every_mode_matches_numpy(tmp_path):
    scenarios.every_mode_matches_numpy(MODE, tmp_path)


def test_tensorboard_csv_and_json_agree(tmp_path):
    scenarios.tensorboard_csv_and_json_agree(MODE, tmp_path)


def test_bad_metrics_fail_naming_the_metric(tmp_path):
    scenarios.bad_metrics_fail_naming_the_metric(MODE, tmp_path)


def test_progress_bars_for_every_phase(tmp_path, capsys):
    scenarios.progress_bars_for_every_phase(MODE, tmp_path, capsys)


def test_train_log_verbosity(tmp_path):
    scenarios.train_log_verbosity(MODE, tmp_path)
