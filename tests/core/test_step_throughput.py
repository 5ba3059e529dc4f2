"""``train/step_time`` and ``train/samples_per_sec`` are what they say: against a clock of the test's own (a callback
reading ``time.perf_counter`` at every step's end), step time is the window's wall time per step and samples/s x
that wall time is the window's example count, within 10 %.

Each step sleeps a few milliseconds in the callback, so a window lasts long enough for the clocks to agree well
inside the tolerance while the logger defers and batches its writes (which is what made the old figures wrong:
they were timed when a deferred write ran, not at the window's end).
"""

import csv
import time
from collections import defaultdict

import pytest

from jax_trainer.callbacks import Callback, CallbackConfig
from jax_trainer.logger.config import LoggerConfig
from jax_trainer.logger.tools import CSVToolLoggerConfig
from jax_trainer.optimizer import AdamWConfig
from jax_trainer.trainer import ImgClassifierTrainer, ImgClassifierTrainerConfig
from jax_trainer.zoo.configs import MLPClassifierConfig
from trainer_helpers import digits_splits

LOG_EVERY = 6
SLEEP = 0.01


class StepClock(Callback):
    """The test's own timer: the wall-clock time at the end of every train step, read before this callback's sleep
    (so that the test's window and the trainer's hold the same sleeps, however long each one took)."""

    def __init__(self, trainer):
        super().__init__(CallbackConfig(), trainer)
        self.ends: dict[int, float] = {}

    def on_train_step_end(self, step: int, epoch_idx: int) -> None:
        self.ends[step] = time.perf_counter()
        time.sleep(SLEEP)


def read_rows(path) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    with open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows[int(row["step"])][row["key"]] = float(row["value"])
    return rows


def test_step_time_and_throughput_match_a_clock_of_the_tests_own(tmp_path):
    splits = digits_splits(batch_size=64)  # 18 train steps per epoch
    logger = LoggerConfig(log_dir=str(tmp_path), log_steps_every=LOG_EVERY, tool_config=CSVToolLoggerConfig())
    config = ImgClassifierTrainerConfig(model_mode="nnx", train_epochs=3, enable_progress_bar=False, logger=logger)
    trainer = ImgClassifierTrainer(
        config, MLPClassifierConfig(hidden_dims=[32]), AdamWConfig(learning_rate=1e-3), next(iter(splits.train))
    )
    clock = StepClock(trainer)
    trainer.callbacks.append(clock)
    trainer.train_model(splits.train)

    rows = read_rows(tmp_path / "metrics.csv")
    steps_per_epoch, batch = len(splits.train), splits.train.batch_size
    checked = 0
    for step, values in sorted(rows.items()):
        if "train/step_time" not in values:
            continue
        previous = step - LOG_EVERY
        if (step - 1) // steps_per_epoch != (previous - 1) // steps_per_epoch or previous < 1:
            continue  # the window opens at an epoch's start, before the test's clock sees a step: not comparable
        wall = clock.ends[step] - clock.ends[previous]
        assert values["train/step_time"] == pytest.approx(wall / LOG_EVERY, rel=0.1), step
        assert values["train/samples_per_sec"] * wall == pytest.approx(LOG_EVERY * batch, rel=0.1), step
        checked += 1
    assert checked >= 6
