"""The optuna side of ``jax-trainer tune``: storage, sampler and pruner, the worker loop and one trial.

Workers are separate processes that share one study through its storage (an SQLite file by default).
Each asks for a trial under a file lock in the study folder, so that together they start exactly as many
trials as are missing: a study is done when ``n_trials`` trials are COMPLETE or PRUNED. A trial is one
training run in a folder of its own; its monitored metric is reported to optuna at every validation
epoch, and a trial the pruner stops ends cleanly through ``trainer.should_stop``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Iterator

from jax_trainer.callbacks.base import Callback, CallbackConfig, missing_metric
from jax_trainer.config import ConfigError, parse
from jax_trainer.tune.space import StudySetup, encode_choices, needs_encoding

ASK_LOCK = "ask.lock"
STUDY_LOCK = "tune.lock"


def import_optuna():
    """optuna, or an ImportError saying how to install it (it is the optional ``tune`` extra)."""
    try:
        import optuna  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ImportError("jax-trainer tune needs optuna: pip install 'jax_trainer[tune]'") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released by the kernel if the process dies); raises
    BlockingIOError when ``blocking`` is False and another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield
    finally:
        os.close(fd)


def storage_for(setup: StudySetup):
    """The study's storage: SQLite waits for a busy database instead of failing at once."""
    optuna = import_optuna()
    if setup.storage.startswith("sqlite:"):
        return optuna.storages.RDBStorage(setup.storage, engine_kwargs={"connect_args": {"timeout": 120}})
    return setup.storage


def make_sampler(setup: StudySetup, salt: int = 0):
    """TPE (or random) seeded from the config's seed and ``salt``: workers, and reruns, draw different streams."""
    optuna = import_optuna()
    seed = (setup.seed * 1_000_003 + salt) % 2**32
    cfg = setup.tune.sampler
    if cfg.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials)


def make_pruner(setup: StudySetup):
    """MedianPruner from ``tune.pruner``, or no pruning."""
    optuna = import_optuna()
    cfg = setup.tune.pruner
    if cfg.type == "none":
        return optuna.pruners.NopPruner()
    # Steps are epochs, counted from 1: optuna prunes from step n_warmup_steps on, so epoch n_warmup_epochs + 1.
    return optuna.pruners.MedianPruner(
        n_startup_trials=cfg.n_startup_trials,
        n_warmup_steps=cfg.n_warmup_epochs + 1,
        interval_steps=cfg.interval_epochs,
    )


def open_study(setup: StudySetup, salt: int = 0, create: bool = False):
    """Load the study (``create``: create it if missing, checking a found one's direction)."""
    optuna = import_optuna()
    kwargs = dict(storage=storage_for(setup), sampler=make_sampler(setup, salt), pruner=make_pruner(setup))
    if not create:
        return optuna.load_study(study_name=setup.study_name, **kwargs)
    study = optuna.create_study(study_name=setup.study_name, direction=setup.direction, load_if_exists=True, **kwargs)
    found = study.direction.name.lower()
    if found != setup.direction:
        raise ConfigError(
            f"study {setup.study_name!r} in {setup.storage} was created to {found}, not to {setup.direction}; "
            "use another tune.study_name or tune.dir",
            "tune.direction",
        )
    return study


def states(*names: str) -> tuple:
    """optuna TrialStates by name."""
    optuna = import_optuna()
    return tuple(optuna.trial.TrialState[name] for name in names)


def count(study, *names: str) -> int:
    """Trials of the study in the named states."""
    return len(study.get_trials(deepcopy=False, states=states(*names)))


def fail_stale(study) -> list[int]:
    """Mark trials left RUNNING (by a killed process) FAIL; call only while no worker runs (the study lock)."""
    stale = [t.number for t in study.get_trials(deepcopy=False, states=states("RUNNING"))]
    for number in stale:
        study.tell(number, state=states("FAIL")[0])
    return stale


def enqueue_initial(study, setup: StudySetup) -> int:
    """Queue ``tune.enqueue``'s parameter sets, once: only into a study without trials."""
    if study.get_trials(deepcopy=False) or not setup.tune.enqueue:
        return 0
    space = setup.tune.space
    for params in setup.tune.enqueue:
        encoded = {p: (encode_choices(space[p])[space[p].choices.index(v)] if needs_encoding(space[p]) else v)
                   for p, v in params.items()}
        study.enqueue_trial(encoded)
    return len(setup.tune.enqueue)


def suggest(trial, setup: StudySetup) -> dict[str, Any]:
    """One value per searched path, as optuna stores it (categorical choices that are not scalars: JSON)."""
    params = {}
    for path, dist in setup.tune.space.items():
        if dist.type == "float":
            params[path] = trial.suggest_float(path, dist.low, dist.high, log=dist.log, step=dist.step)
        elif dist.type == "int":
            step = int(dist.step) if dist.step is not None else 1
            params[path] = trial.suggest_int(path, int(dist.low), int(dist.high), step=step, log=dist.log)
        else:
            params[path] = trial.suggest_categorical(path, encode_choices(dist))
    return params


class TrialReporter(Callback):
    """Reports the monitored metric to the optuna trial after every validation (train metrics: every epoch) and
    sets ``trainer.should_stop`` when the pruner says so; the run then ends cleanly after that epoch."""

    def __init__(self, trial, monitor: str, trainer):
        super().__init__(CallbackConfig(), trainer)
        self.trial, self.monitor = trial, monitor
        self.values: list[tuple[int, float]] = []
        self.pruned = False

    def on_training_epoch_end(self, train_metrics: dict, epoch_idx: int) -> None:
        if self.monitor.startswith("train/"):
            self._report(train_metrics, epoch_idx)

    def on_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        if self.monitor.startswith("val/"):
            self._report(eval_metrics, epoch_idx)

    def _report(self, metrics, epoch_idx: int) -> None:
        if self.monitor not in metrics:
            raise missing_metric("tune.monitor", self.monitor, dict(metrics))
        value = float(metrics[self.monitor])
        self.values.append((epoch_idx, value))
        self.trial.report(value, epoch_idx)
        if not self.pruned and self.trial.should_prune():
            self.pruned = True
            self.trainer.should_stop = True

    def objective(self, how: str, direction: str) -> float:
        """The trial's value: the best (by ``direction``) or the last reported value."""
        values = [v for _, v in self.values]
        if how == "last":
            return values[-1]
        finite = [v for v in values if v == v] or values
        return max(finite) if direction == "maximize" else min(finite)


def run_trial(setup: StudySetup, study, trial) -> str:
    """Train one trial in its own run folder and tell the study; returns the final state's name."""
    from jax_trainer.run import build_data, build_trainer  # pylint: disable=import-outside-toplevel

    run_dir = setup.trial_dir(trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    fail = states("FAIL")[0]
    try:
        params = suggest(trial, setup)
        config = parse(setup.config_for(params, run_dir))
        dataset, splits = build_data(config)
        trainer = build_trainer(config, dataset.example_batch(), dataset=dataset)
        reporter = TrialReporter(trial, setup.monitor, trainer)
        trainer.callbacks.append(reporter)
        trainer.train_model(splits.train, splits.val, splits.test)
        if not reporter.values:
            raise ValueError(f"{setup.monitor} was never reported: does the run validate (a val loader, epochs)?")
        value = reporter.objective(setup.tune.objective, setup.direction)
        trial.set_user_attr("reported", reporter.values)
    except KeyboardInterrupt:
        study.tell(trial, state=fail)
        raise
    except Exception as err:  # a failing trial (bad values, NaNs, a bug): recorded, the study goes on
        message = f"{type(err).__name__}: {err}"
        trial.set_user_attr("error", message[:2000])
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "tune_error.txt").write_text(traceback.format_exc())
        study.tell(trial, state=fail)
        _say(f"trial {trial.number}: FAIL ({message.splitlines()[0][:300]}; traceback in {run_dir}/tune_error.txt)")
        return "FAIL"
    if reporter.pruned:
        frozen = study.tell(trial, state=states("PRUNED")[0])
        epoch, last = reporter.values[-1]
        _say(f"trial {trial.number}: PRUNED after epoch {epoch} ({setup.monitor}={last:.6g}) {params}")
        return frozen.state.name
    frozen = study.tell(trial, value)
    _say(f"trial {trial.number}: {frozen.state.name} {setup.monitor}={value:.6g} {params}")
    return frozen.state.name


def run_worker(setup: StudySetup, n_trials: int, worker_index: int = 0) -> int:
    """Run trials until ``n_trials`` are COMPLETE, PRUNED or RUNNING; 1 after ``max_failures`` failed trials."""
    ask_lock = setup.study_dir / ASK_LOCK
    with file_lock(ask_lock):
        salt = 7919 * worker_index + len(open_study(setup).get_trials(deepcopy=False))
    study = open_study(setup, salt=salt)
    failures = 0
    while True:
        with file_lock(ask_lock):
            if count(study, "COMPLETE", "PRUNED", "RUNNING") >= n_trials:
                return 0
            trial = study.ask()
        if run_trial(setup, study, trial) == "FAIL":
            failures += 1
            if failures >= setup.tune.max_failures:
                _say(f"worker {worker_index}: stopping after {failures} failed trials (tune.max_failures)")
                return 1


def _say(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()
