"""Built-in callbacks and value policies in real runs under the nnx backend."""

import callback_scenarios as sc

MODE = "nnx"


def test_builtin_callbacks(tmp_path):
    sc.builtin_callbacks(MODE, tmp_path)


def test_early_stopping(tmp_path):
    sc.early_stopping(MODE, tmp_path)


def test_gradient_spike_scanned_steps(tmp_path):
    sc.gradient_spike(MODE, tmp_path, steps_per_dispatch=2)


def test_value_policy(tmp_path):
    sc.value_policy(MODE, tmp_path)


def test_raising_callback_finalizes_all(tmp_path):
    sc.raising_callback_finalizes_all(MODE, tmp_path)


def test_callback_state_survives_resume(tmp_path):
    sc.callback_state_survives_resume(MODE, tmp_path)
