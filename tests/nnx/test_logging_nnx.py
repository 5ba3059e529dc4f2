"""Logging under the nnx backend alone (the shared scenarios: tests/core/test_backends_logging.py).

Progress bars and train.log verbosity do not depend on the backend; they run here only.
"""

from logging_scenarios import all_modes_trainer, make_batches


def test_progress_bars_for_every_phase(mode, tmp_path, capsys, caplog):
    """Forced on: one bar per train/val/test loop, each one line into a non-TTY stderr; automatic (None) with a
    non-TTY stderr: none. The epoch's loss is in its log line (the bar is closed before the epoch's values are
    read, so that reading them never waits for the device)."""
    train, val, test = make_batches([4] * 3, 0), make_batches([4] * 2, 1), make_batches([4], 2)
    trainer = all_modes_trainer(mode, tmp_path / "on", tools=[], enable_progress_bar=True)
    trainer.train_model(train, val, test)
    err = capsys.readouterr().err
    for desc, total in (("Epoch 1", len(train)), ("Val 1", len(val)), ("Test 1", len(test))):
        assert f"{desc}: 100%" in err and f"{total}/{total}" in err, desc
    assert len(err.splitlines()) == 3 and "\r" not in err
    assert "Epoch 1 train: " in caplog.text and "train/loss_epoch=" in caplog.text
    trainer = all_modes_trainer(mode, tmp_path / "auto", tools=[], enable_progress_bar=None)
    trainer.train_model(train, val, test)
    assert capsys.readouterr().err == ""


def test_train_log_verbosity(mode, tmp_path):
    """log_file_verbosity=warning keeps the per-epoch info lines (see the TensorBoard scenario) out of train.log."""
    trainer = all_modes_trainer(mode, tmp_path, tools=[], log_file_verbosity="warning")
    trainer.train_model(make_batches([4] * 2, 0), make_batches([4], 1))
    assert (tmp_path / "train.log").read_text() == ""
