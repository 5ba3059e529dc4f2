"""From a config mapping with a ``tune:`` section to a checked study setup (no optuna here).

:func:`prepare` parses the config, resolves the study's defaults and checks the search space before any
trial runs: every distribution's corner values (``low``, ``high``, a value inside a float range, each
choice) are written into the config at their dotted path and the result is parsed and its optimizer built
(without a schedule), so whatever the schema or the optimizer's own guards reject (an unknown path, a float
in an int field, weight decay configured twice) fails now, as a :class:`ConfigError` naming the path.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jax_trainer.config import ConfigError, parse, to_dict
from jax_trainer.config import set_path as set_config_path
from jax_trainer.tune.config import DIRECTIONS, PRIMITIVES, DistributionConfig, TuneConfig

# Fields the tuner sets itself: searching them would break the study's layout.
RESERVED = ("tune", "trainer.logger.log_dir", "imports")
MAX_COMBINATIONS = 256  # corner combinations checked together; beyond, each corner alone plus all-low/all-high


@dataclass
class StudySetup:
    """Everything a coordinator or worker needs: the config mapping without ``tune``, and the study settings."""

    base: dict
    tune: TuneConfig
    monitor: str
    direction: str  # "maximize" | "minimize"
    study_dir: Path
    storage: str
    study_name: str
    seed: int

    def trial_dir(self, number: int) -> Path:
        """The run folder (``trainer.logger.log_dir``) of trial ``number``."""
        return self.study_dir / f"trial_{number:04d}"

    def config_for(self, params: dict[str, Any], log_dir: Path | str) -> dict:
        """The complete config mapping of a trial: the base config with ``params`` (decoded) and ``log_dir``."""
        data = copy.deepcopy(self.base)
        for path, value in params.items():
            set_path(data, path, decode(self.tune.space.get(path), value))
        set_path(data, "trainer.logger.log_dir", str(log_dir))
        return data


def set_path(data: dict, dotted: str, value: Any) -> None:
    """``data[a][b][c] = value`` (a copy) for ``a.b.c``, as ``dotted.key=value`` overrides do."""
    if not all(dotted.split(".")):
        raise ConfigError("a search-space key must be a dotted path like optimizer.learning_rate", dotted)
    set_config_path(data, dotted, copy.deepcopy(value))


def needs_encoding(dist: DistributionConfig | None) -> bool:
    """Optuna's categorical choices must be None, bool, int, float or str; others (lists, mappings) travel as JSON."""
    return dist is not None and dist.type == "categorical" and not all(isinstance(c, PRIMITIVES) for c in dist.choices)


def encode_choices(dist: DistributionConfig) -> list:
    """The choices as optuna stores them."""
    return [json.dumps(c) for c in dist.choices] if needs_encoding(dist) else list(dist.choices)


def decode(dist: DistributionConfig | None, value: Any) -> Any:
    """A stored parameter value back to the config value."""
    return json.loads(value) if needs_encoding(dist) and isinstance(value, str) else value


def prepare(data: dict, study_dir: str | None = None) -> StudySetup:
    """Check a config mapping with a ``tune:`` section and resolve the study's defaults; raises ConfigError."""
    if not isinstance(data.get("tune"), dict):
        raise ConfigError("the config has no tune: section (search space and study settings)", "tune")
    config = parse(data)
    tune = config.tune
    if not tune.space:
        raise ConfigError("the search space is empty: add dotted.path: {type: ..., ...} entries", "tune.space")
    base = to_dict(config)
    base.pop("tune", None)
    monitor, direction = _monitor_and_direction(config, tune)
    folder = Path(study_dir or tune.dir or f"{config.trainer.logger.log_dir}_tune")
    storage = tune.storage or f"sqlite:///{folder.resolve() / 'study.db'}"
    seed = tune.sampler.seed if tune.sampler.seed is not None else config.seed
    setup = StudySetup(base, tune, monitor, direction, folder, storage, tune.study_name or folder.name, seed)
    check_space(setup)
    for i, params in enumerate(tune.enqueue):
        unknown = sorted(set(params) - set(tune.space))
        if unknown:
            raise ConfigError(f"parameters {unknown} are not in tune.space", f"tune.enqueue.{i}")
        _check_sample(setup, params, f"tune.enqueue.{i}", "this parameter set")
    return setup


def _monitor_and_direction(config, tune: TuneConfig) -> tuple[str, str]:
    callbacks = list(getattr(config.trainer, "callbacks", {}).values())
    source = next((c for c in callbacks if getattr(c, "class_name", "") == "ModelCheckpoint"), None)
    source = source or next((c for c in callbacks if getattr(c, "class_name", "") == "EarlyStopping"), None)
    monitor = tune.monitor or getattr(source, "monitor", None) or "val/loss"
    if tune.direction is not None:
        direction = DIRECTIONS[tune.direction]
    elif tune.monitor is None or tune.monitor == getattr(source, "monitor", None):
        direction = DIRECTIONS[getattr(source, "mode", "min")]
    else:
        raise ConfigError(f"tune.monitor {monitor!r} needs a direction (maximize or minimize)", "tune.direction")
    if not monitor.startswith(("val/", "train/")):
        raise ConfigError(f"tune.monitor must be a val/ or train/ metric, got {monitor!r}", "tune.monitor")
    return monitor, direction


def check_space(setup: StudySetup) -> None:
    """Every corner value of every distribution, alone and in combination, must make a valid config."""
    space = setup.tune.space
    for path in space:
        if any(path == r or path.startswith(r + ".") for r in RESERVED):
            raise ConfigError(f"{path} is set by the tuner and cannot be searched", f"tune.space.{path}")
        clash = [p for p in space if p != path and p.startswith(path + ".")]
        if clash:
            raise ConfigError(f"{path} overlaps {clash[0]}: search one or the other", f"tune.space.{path}")
    _check_sample(setup, {}, "tune", "the config itself")
    corners = {path: dist.corner_values() for path, dist in space.items()}
    for path, values in corners.items():
        for label, value in values:
            _check_sample(setup, {path: value}, f"tune.space.{path}", f"{label} ({value!r})")
    combos = 1
    for values in corners.values():
        combos *= len(values)
    if len(space) < 2:
        return
    if combos <= MAX_COMBINATIONS:
        chosen = itertools.product(*[[(p, v) for _, v in values] for p, values in corners.items()])
    else:
        lows = [(p, values[0][1]) for p, values in corners.items()]
        highs = [(p, values[min(1, len(values) - 1)][1]) for p, values in corners.items()]
        chosen = [lows, highs]
    for combo in chosen:
        params = dict(combo)
        shown = ", ".join(f"{p}={v!r}" for p, v in params.items())
        _check_sample(setup, params, "tune.space", f"the combination {shown}")


def _check_sample(setup: StudySetup, params: dict[str, Any], where: str, what: str) -> None:
    data = copy.deepcopy(setup.base)
    try:
        for path, value in params.items():
            set_path(data, path, value)
        config = parse(data)
        _check_optimizer(config)
    except ConfigError as err:
        raise ConfigError(f"{where}: {what} does not make a valid config: {err}", where) from err


def _check_optimizer(config) -> None:
    """Build the optimizer once with a constant learning rate (schedule lengths are known only per run), so the
    optimizer's own checks run now: e.g. weight decay both as a transform and in the optimizer is refused."""
    from jax_trainer.optimizer import build_optimizer  # pylint: disable=import-outside-toplevel

    optimizer = config.optimizer
    if dataclasses.is_dataclass(optimizer) and any(f.name == "learning_rate" for f in dataclasses.fields(optimizer)):
        optimizer = dataclasses.replace(optimizer, learning_rate=1e-3)
    try:
        build_optimizer(optimizer, None)
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"the optimizer cannot be built: {err}", "optimizer") from err
