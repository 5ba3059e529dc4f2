"""The ``tune:`` section of a config file (plain dataclasses; importing this never imports optuna or jax).

``jax-trainer fit`` parses and ignores the section; ``jax-trainer tune`` reads it. Checks that need the
rest of the config (a dotted path exists, a sampled value fits its field) live in ``tune.space``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

DIRECTIONS = {"maximize": "maximize", "max": "maximize", "minimize": "minimize", "min": "minimize"}
PRIMITIVES = (str, int, float, bool, type(None))


@dataclass
class DistributionConfig:
    """One searched field. ``float``: ``low``..``high``, ``log`` or a ``step``; ``int``: ``low``..``high``
    (inclusive) with ``step`` or ``log``; ``categorical``: one of ``choices`` (any YAML values, lists included)."""

    type: Literal["float", "int", "categorical"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[list[Any]] = None

    def __post_init__(self):
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("choices of a categorical distribution must be a non-empty list")
            if self.low is not None or self.high is not None or self.step is not None or self.log:
                raise ValueError("choices: a categorical distribution takes no low, high, step or log")
            return
        if self.choices is not None:
            raise ValueError(f"choices are only for type categorical, not {self.type}")
        if self.low is None or self.high is None:
            raise ValueError(f"low and high are required for a {self.type} distribution")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) > high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"low must be > 0 with log: true, got {self.low:g}")
        if self.log and self.step is not None:
            raise ValueError("step and log: true cannot be combined")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step:g}")
        if self.type == "int":
            for name in ("low", "high", "step"):
                value = getattr(self, name)
                if value is not None and not float(value).is_integer():
                    raise ValueError(f"{name} of an int distribution must be a whole number, got {value:g}")

    def corner_values(self) -> list[tuple[str, Any]]:
        """(label, value) pairs that a search-space check applies to the config: the ends of the range and,
        for floats, a non-integral point inside it (so a float field is told from an int field)."""
        if self.type == "categorical":
            return [(f"choice {i}", choice) for i, choice in enumerate(self.choices)]
        if self.type == "int":
            return [("low", int(self.low)), ("high", int(self.high))]
        inner = self.low * (self.high / self.low) ** 0.37 if self.log else self.low + 0.37 * (self.high - self.low)
        values = [("low", float(self.low)), ("high", float(self.high))]
        if self.step is None and self.high > self.low:
            inner = float(inner) if not float(inner).is_integer() else inner + 1e-3 * (self.high - self.low)
            values.append(("a value inside the range", inner))
        return values


@dataclass
class SamplerConfig:
    """``tpe`` (optuna's TPESampler, seeded) or ``random``. ``seed`` null: the config's top-level ``seed``."""

    type: Literal["tpe", "random"] = "tpe"
    seed: Optional[int] = None
    n_startup_trials: int = 10

    def __post_init__(self):
        if self.n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {self.n_startup_trials}")


@dataclass
class PrunerConfig:
    """``median`` (optuna's MedianPruner) or ``none``. A trial is pruned at a validation epoch when its monitored
    value is worse than the median of the earlier trials' values at the same epoch (optuna's step = the epoch).
    No trial is pruned before ``n_startup_trials`` trials have finished, nor in its first ``n_warmup_epochs``
    epochs; after those, the pruner is asked every ``interval_epochs`` epochs."""

    type: Literal["median", "none"] = "median"
    n_startup_trials: int = 5
    n_warmup_epochs: int = 0
    interval_epochs: int = 1

    def __post_init__(self):
        if self.n_startup_trials < 0 or self.n_warmup_epochs < 0:
            raise ValueError("n_startup_trials and n_warmup_epochs must be >= 0")
        if self.interval_epochs < 1:
            raise ValueError(f"interval_epochs must be >= 1, got {self.interval_epochs}")


@dataclass
class TuneConfig:
    """Hyperparameter search with optuna (``jax-trainer tune``).

    ``space`` maps dotted config paths to distributions. ``monitor``/``direction`` default to the
    ModelCheckpoint callback's ``monitor``/``mode`` (else EarlyStopping's, else ``val/loss``, minimize).
    ``objective``: the trial's value is its ``best`` monitored value over the validation epochs (what
    ModelCheckpoint keeps) or the ``last`` one. ``dir`` (the study folder) defaults to
    ``<trainer.logger.log_dir>_tune``; ``storage`` to ``sqlite:///<dir>/study.db``; ``study_name`` to the
    folder's name. ``enqueue``: parameter sets tried first when the study is created. Each worker stops
    after ``max_failures`` failed trials.
    """

    space: dict[str, DistributionConfig] = field(default_factory=dict)
    n_trials: int = 20
    monitor: Optional[str] = None
    direction: Optional[str] = None
    objective: Literal["best", "last"] = "best"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    dir: Optional[str] = None
    storage: Optional[str] = None
    study_name: Optional[str] = None
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    max_failures: int = 3

    def __post_init__(self):
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {self.direction!r}")
        if self.max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {self.max_failures}")
