"""What a finished ``jax-trainer tune`` leaves: a summary table, ``best.yaml`` and the plots (PNG)."""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml

from jax_trainer.config import parse
from jax_trainer.tune.space import StudySetup, decode

BEST_FILE = "best.yaml"
SUMMARY_FILE = "summary.txt"
PLOTS = {"optimization_history.png": "plot_optimization_history", "param_importances.png": "plot_param_importances"}


def summary_table(setup: StudySetup, study) -> str:
    """One row per trial: number, state, value, duration, parameters."""
    paths = list(setup.tune.space)
    header = ["trial", "state", setup.monitor, "seconds"] + paths
    rows = [header]
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None
        )
        seconds = trial.duration.total_seconds() if trial.duration is not None else None
        rows.append(
            [str(trial.number), trial.state.name, "-" if value is None else f"{value:.6g}",
             "-" if seconds is None else f"{seconds:.1f}"]
            + [_short(decode(setup.tune.space[p], trial.params[p])) if p in trial.params else "-" for p in paths]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_best(setup: StudySetup, study) -> Path | None:
    """``best.yaml``: the complete config of the best trial (no ``tune:`` section), logging to ``<dir>/best``;
    ``jax-trainer fit best.yaml`` reruns it. None when no trial completed."""
    completed = study.get_trials(deepcopy=False, states=_complete())
    if not completed:
        return None
    best = study.best_trial
    data = setup.config_for(best.params, setup.study_dir / "best")
    parse(data)  # what fit will read: check it before writing
    path = setup.study_dir / BEST_FILE
    header = (
        f"# Best trial {best.number} of study {setup.study_name!r} ({len(completed)} completed): "
        f"{setup.monitor} = {best.value!r} ({setup.tune.objective} over the validation epochs).\n"
        f"# Trial run folder: {best.user_attrs.get('run_dir', '?')}.  Rerun: jax-trainer fit {path}\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def _complete() -> tuple:
    from jax_trainer.tune.study import states  # pylint: disable=import-outside-toplevel

    return states("COMPLETE")


def write_plots(setup: StudySetup, study) -> dict[str, str]:
    """PNG plots (optuna.visualization.matplotlib, Agg backend) in the study folder; name -> path or why skipped."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from optuna.visualization import matplotlib as optuna_plots  # pylint: disable=import-outside-toplevel

    done: dict[str, str] = {}
    for name, function in PLOTS.items():
        path = setup.study_dir / name
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                axes = getattr(optuna_plots, function)(study, target_name=setup.monitor)
            figure = axes.figure
            figure.set_size_inches(7, 4.2)
            figure.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(figure)
            done[name] = str(path)
        except Exception as err:  # e.g. importances need at least two completed trials  # pylint: disable=broad-except
            plt.close("all")
            done[name] = f"skipped ({type(err).__name__}: {err})"
    return done


def write_report(setup: StudySetup, study) -> tuple[str, Path | None, dict[str, str]]:
    """The summary table (also written to ``summary.txt``), ``best.yaml`` and the plots."""
    table = summary_table(setup, study)
    (setup.study_dir / SUMMARY_FILE).write_text(table + "\n")
    return table, write_best(setup, study), write_plots(setup, study)
