"""An evaluation's bar shows the evaluation's true rate: batches over the wall time the device took for them.

Eval steps are dispatched asynchronously, so a bar closed after the last dispatch showed the host's dispatch rate
(thousands of batches per second) while the device was still computing. The model here is wide enough that the
device's time dominates; the test's own clock around ``eval_model`` bounds what the bar may claim.
"""

import re
import sys
import time

from jax_trainer.zoo.configs import MLPClassifierConfig
from terminal_screen import render
from trainer_helpers import classifier, digits_splits


class Terminal:
    """A stand-in for a terminal (tqdm draws in place on it)."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_an_evaluations_bar_rate_is_its_wall_time(tmp_path, monkeypatch):
    splits = digits_splits(batch_size=64)
    trainer = classifier(
        "nnx", tmp_path, model=MLPClassifierConfig(hidden_dims=[1024, 1024, 1024]), splits=splits,
        enable_progress_bar=True,
    )  # fmt: skip
    n_batches = len(splits.test)
    trainer.eval_model(splits.test, "test", 1)  # compiles
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    start = time.perf_counter()
    trainer.eval_model(splits.test, "test", 2)
    seconds = time.perf_counter() - start
    monkeypatch.undo()
    trainer.logger.finalize("success")
    bars = [line for line in render("".join(terminal.parts)) if line.startswith("Test 2:")]
    assert len(bars) == 1 and f"{n_batches}/{n_batches}" in bars[0], bars
    rate = float(re.search(r"([\d.]+)it/s", bars[0]).group(1))
    # the bar's pass lies inside the test's clock: its rate can be no lower than n / seconds, and it must not be
    # far higher (a rate of dispatches is tens of times higher; the margin absorbs the work outside the bar)
    assert n_batches / seconds * 0.95 <= rate <= n_batches / seconds * 3, (rate, n_batches / seconds)
