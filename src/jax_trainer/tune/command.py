"""``jax-trainer tune CONFIG [dotted.key=value ...] [--n-trials N] [--jobs K]``.

The command checks the config and its search space, takes the study folder's lock (one ``tune`` per study at
a time), marks trials a killed run left RUNNING as FAIL, runs the missing trials in K worker processes
(``python -m jax_trainer tune ... --worker``) sharing the study's storage, then prints the summary table and
writes ``best.yaml`` and the plots. Rerunning the same command after a crash continues the study.
Importing this module imports neither jax nor optuna (``jax-trainer --help`` stays fast).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tune`` command's arguments (the CLI adds ``--cpu-threads`` and ``--debug``)."""
    parser.add_argument("config", help="YAML config file with a tune: section")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, typed by the schema")
    parser.add_argument(
        "--n-trials", type=_positive_int, default=None, metavar="N",
        help="finished (complete or pruned) trials the study should reach (default: tune.n_trials)",
    )
    parser.add_argument(
        "--jobs", type=_positive_int, default=1, metavar="K", help="worker processes sharing the study (default 1)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Coordinator (or, with ``--worker``, one worker) of a study; the exit code."""
    from jax_trainer.config import ConfigError, apply_overrides, read_yaml  # pylint: disable=import-outside-toplevel
    from jax_trainer.tune.space import prepare  # pylint: disable=import-outside-toplevel

    try:
        setup = prepare(apply_overrides(read_yaml(args.config), args.overrides))
    except ConfigError as err:
        raise ConfigError(f"{err} (in {args.config} or its overrides)", err.path) from err
    from jax_trainer.tune import study as studies  # pylint: disable=import-outside-toplevel

    studies.import_optuna()  # a missing optuna fails here, before the study folder is made
    n_trials = args.n_trials or setup.tune.n_trials
    try:
        if args.worker:
            return studies.run_worker(setup, n_trials, args.worker_index)
        setup.study_dir.mkdir(parents=True, exist_ok=True)
        # SIGTERM stops the workers too (a SystemExit unwinds through _spawn_workers); a rerun continues the study.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(studies.file_lock(setup.study_dir / studies.STUDY_LOCK, blocking=False))
            except BlockingIOError as err:
                raise ConfigError(
                    f"another `jax-trainer tune` is running on {setup.study_dir}; add workers with --jobs instead",
                    "tune.dir",
                ) from err
            return _coordinate(args, setup, n_trials, studies)
    except KeyboardInterrupt:
        if not args.worker:
            print(f"interrupted; rerun the same command to continue the study in {setup.study_dir}", file=sys.stderr)
        return 130


def _exit_on_sigterm(signum, frame) -> None:  # pylint: disable=unused-argument
    raise SystemExit(143)


def _coordinate(args, setup, n_trials: int, studies) -> int:
    from jax_trainer.tune.report import write_report  # pylint: disable=import-outside-toplevel

    study = studies.open_study(setup, create=True)
    stale = studies.fail_stale(study)
    if stale:
        print(f"marked trials {stale} FAIL: left RUNNING by an earlier, interrupted run", flush=True)
    queued = studies.enqueue_initial(study, setup)
    done = studies.count(study, "COMPLETE", "PRUNED")
    print(
        f"study {setup.study_name!r} in {setup.study_dir} ({setup.direction} {setup.monitor}): {done}/{n_trials} "
        f"trials finished{f', {queued} queued from tune.enqueue' if queued else ''}",
        flush=True,
    )
    worker_rc = 0
    if done < n_trials:
        jobs = min(args.jobs, n_trials - done)
        if jobs == 1 and args.jobs == 1:
            worker_rc = studies.run_worker(setup, n_trials, 0)
        else:
            worker_rc = _spawn_workers(args, n_trials, jobs)
    study = studies.open_study(setup)
    table, best, plots = write_report(setup, study)
    print(table)
    for name, where in plots.items():
        print(f"{name}: {where}")
    if best is None:
        print(f"no trial completed; nothing to write to {setup.study_dir / 'best.yaml'}", file=sys.stderr)
        return 1
    print(f"best trial {study.best_trial.number}: {setup.monitor} = {study.best_value!r}; config in {best}")
    finished = studies.count(study, "COMPLETE", "PRUNED")
    if finished < n_trials:
        print(f"only {finished}/{n_trials} trials finished (workers exited with {worker_rc})", file=sys.stderr)
        return 1
    return 0


def _spawn_workers(args, n_trials: int, jobs: int) -> int:
    """K worker processes of this command; the largest exit code among them."""
    command = [sys.executable, "-m", "jax_trainer", "tune", args.config, *args.overrides, "--worker",
               "--n-trials", str(n_trials)]
    if getattr(args, "cpu_threads", None):
        command += ["--cpu-threads", str(args.cpu_threads)]
    if getattr(args, "debug", False):
        command.append("--debug")
    workers = [subprocess.Popen(command + ["--worker-index", str(i)]) for i in range(jobs)]
    try:
        return max(worker.wait() for worker in workers)
    except BaseException:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
        for worker in workers:
            worker.wait()
        raise
