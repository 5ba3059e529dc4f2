"""ProgressBar: off without a terminal, forced on into a given stream, postfix formatted only at redraws."""

import io

from jax_trainer.logger.progress import ProgressBar, progress_enabled


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
    stream = io.StringIO()
    with ProgressBar(total=5, desc="epoch 1", enabled=True, file=stream, min_interval=0.0) as bar:
        for step in range(5):
            bar.update(1, loss=0.5 / (step + 1))
    text = stream.getvalue()
    assert "epoch 1" in text and "5/5" in text and "loss=0.1" in text


def test_postfix_formatted_only_when_the_bar_redraws():
    stream = io.StringIO()
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
    bar = ProgressBar(total=3, desc="val", enabled=True, file=io.StringIO(), min_interval=0.0)
    for _ in range(3):
        bar.update(loss=value)
    bar.close()
    assert value.formatted == 3
