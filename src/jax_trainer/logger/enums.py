"""How a metric is aggregated (mode), how often it is written (freq) and in which phases (log mode)."""

from enum import IntEnum


class LogMetricMode(IntEnum):
    """Aggregation of a metric over the steps of a log window."""

    MEAN = 1  # weighted by batch size
    SUM = 2
    SINGLE = 3  # last value seen
    MAX = 4
    MIN = 5
    STD = 6  # batch-size weighted standard deviation
    CONCAT = 7  # values gathered per epoch and handed to callbacks, never written as scalars


class LogFreq(IntEnum):
    """When a training metric is written: every ``log_steps_every`` steps, at epoch end, or both."""

    STEP = 1
    EPOCH = 2
    ANY = 3


class LogMode(IntEnum):
    """Phases in which a metric is computed and written. EVAL covers VAL and TEST."""

    TRAIN = 1
    VAL = 2
    TEST = 3
    EVAL = 4
    ANY = 5

    def includes(self, phase: "LogMode") -> bool:
        """Whether a metric declared with this log mode is active in ``phase`` (TRAIN, VAL or TEST)."""
        if self == LogMode.ANY or self == phase:
            return True
        return self == LogMode.EVAL and phase in (LogMode.VAL, LogMode.TEST)
