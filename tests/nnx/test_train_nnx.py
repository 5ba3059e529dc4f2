"""Issue-2 behaviours under the nnx backend (scenarios shared with the other backend)."""

import train_scenarios as sc

MODE = "nnx"


def test_digits_mlp_reaches_95(tmp_path):
    sc.digits_mlp_reaches_95(MODE, tmp_path)


def test_cnn_batchnorm_dropout(tmp_path):
    sc.cnn_batchnorm_dropout(MODE, tmp_path)


def test_diabetes_regression(tmp_path):
    sc.diabetes_regression(MODE, tmp_path)


def test_debug_equals_jit(tmp_path):
    sc.debug_equals_jit(MODE, tmp_path)


def test_nan_loss_raises(tmp_path):
    sc.nan_loss_raises(MODE, tmp_path)


def test_wrong_loss_shape_raises(tmp_path):
    sc.wrong_loss_shape_raises(MODE, tmp_path)
