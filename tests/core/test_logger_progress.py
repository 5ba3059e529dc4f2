"""ProgressBar: off without a terminal, forced on into a given stream, postfix formatted only at redraws; on a
terminal log lines go above the bar, into anything else a bar is one line."""

import io
import logging
import sys

from jax_trainer.logger.progress import ProgressBar, progress_enabled
from terminal_screen import render


class CountingValue:
    """A postfix value that counts how often it is turned into text."""

    def __init__(self, value):
        self.value = value
        self.formatted = 0

    def __float__(self):
        self.formatted += 1
        return self.value


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_disabled_when_not_a_tty():
    stream = io.StringIO()
    bar = ProgressBar(total=10, desc="train", file=stream)
    assert not bar.enabled
    for _ in range(10):
        bar.update(loss=1.0)
    bar.close()
    assert stream.getvalue() == ""
    assert not progress_enabled(False, FakeTTY())
    assert progress_enabled(None, FakeTTY())


def test_forced_on_writes_to_the_given_file():
    stream = FakeTTY()
    with ProgressBar(total=5, desc="epoch 1", enabled=True, file=stream, min_interval=0.0) as bar:
        for step in range(5):
            bar.update(1, loss=0.5 / (step + 1))
    text = stream.getvalue()
    assert "epoch 1" in text and "5/5" in text and "loss=0.1" in text


def test_postfix_formatted_only_when_the_bar_redraws():
    stream = FakeTTY()
    value = CountingValue(0.25)
    bar = ProgressBar(total=1000, desc="train", enabled=True, file=stream, min_interval=3600.0)
    for _ in range(1000):
        bar.update(loss=value)
    assert value.formatted == 0
    bar.set_postfix(acc=value)
    assert value.formatted == 0
    bar.close()
    assert value.formatted == 1
    assert "1000/1000" in stream.getvalue() and "acc=0.25" in stream.getvalue()


def test_zero_interval_redraws_every_step():
    value = CountingValue(1.0)
    bar = ProgressBar(total=3, desc="val", enabled=True, file=FakeTTY(), min_interval=0.0)
    for _ in range(3):
        bar.update(loss=value)
    bar.close()
    assert value.formatted == 3


def test_forced_on_into_a_file_writes_one_line_per_bar():
    """A log file (not a terminal) gets each bar once, at its final count: no carriage returns to glue lines."""
    stream = io.StringIO()
    for name in ("Epoch 1", "Val 1"):
        with ProgressBar(total=4, desc=name, enabled=True, file=stream, min_interval=0.0) as bar:
            for _ in range(4):
                bar.update(1, loss=0.5)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 2
    assert lines[0].startswith("Epoch 1: 100%") and "4/4" in lines[0] and "loss=0.5" in lines[0]
    assert lines[1].startswith("Val 1: 100%") and "4/4" in lines[1]


def test_log_lines_on_a_terminal_go_above_the_bar(monkeypatch):
    """While a bar is drawn, the console's log handler writes through tqdm: the line is whole on the screen and the
    bar is drawn again below it; once the bar is closed the handler writes to its stream again."""
    terminal = FakeTTY()
    monkeypatch.setattr(sys, "stderr", terminal)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    log = logging.getLogger("jax_trainer")
    log.addHandler(handler)
    level, log.level = log.level, logging.INFO
    try:
        bar = ProgressBar(total=10, desc="Epoch 1", enabled=True, min_interval=0.0)
        for step in range(10):
            bar.update(1)
            if step == 4:
                log.info("Epoch 0 train: loss=1")
        bar.close()
        log.info("after the bar")
    finally:
        log.removeHandler(handler)
        log.level = level
    screen = [line for line in render(terminal.getvalue()) if line]
    assert screen[0] == "INFO:jax_trainer:Epoch 0 train: loss=1"
    assert screen[1].startswith("Epoch 1: 100%") and "10/10" in screen[1]
    assert screen[2:] == ["INFO:jax_trainer:after the bar"]
    assert handler.stream is terminal
