"""Rebuilding a run's trainer from its run directory alone (``TrainerModule.load_from_checkpoint``).

The trainer, model and optimizer sections of the run's ``config.yaml`` are parsed here with the config's own
strict parser pieces (``config_errors.parse_section``, the backends' model parsing): the top-level config module
sits above the trainer and cannot be imported from it. The run's ``imports:`` are imported first — they are code
(README, "Security").
"""

from __future__ import annotations

import dataclasses

import jax

from jax_trainer.backends import parse_model_config
from jax_trainer.checkpoint import find
from jax_trainer.checkpoint.rundir import EXAMPLE_FILE, load_example_batch, read_config_dict
from jax_trainer.config_errors import import_modules, parse_section
from jax_trainer.optimizer import OptimizerInterface
from jax_trainer.parallel.mesh import check_axes, fitted
from jax_trainer.trainer.config import TrainerInterface


def rebuild_from_run(cls, path, which: str = "last", log_dir=None, mesh: dict | None = None):
    """A trainer of class ``cls`` (or a subclass) rebuilt from the run of ``path`` with that checkpoint's weights
    (``which`` of a run directory: "last" or "best"); no callbacks, no logging tools, metric files in ``log_dir``
    (default ``<run>/eval``). ``mesh`` (axis sizes, as ``trainer.mesh``): the layout to restore onto; default the
    run's own mesh where it fits these devices, else its axis names with every device on the batch axis."""
    ckpt = find(path, which)
    run_dir = ckpt.parent.parent
    data = read_config_dict(run_dir)
    import_modules(data.get("imports") or [])
    config = parse_section(TrainerInterface.cfgtype, data.get("trainer"), "trainer")
    if mesh is not None:
        check_axes(mesh, "load_from_checkpoint(mesh=)")
    layout = fitted(config.mesh, jax.device_count()) if mesh is None else dict(mesh)
    config = dataclasses.replace(config, mesh=layout)  # restored onto these devices
    logger = dataclasses.replace(config.logger, log_dir=str(log_dir or run_dir / "eval"), tool_config=None)
    trainer = dataclasses.replace(config, logger=logger, callbacks={}).instantiate(
        TrainerInterface,
        model_config=parse_model_config(config.model_mode, data.get("model")),
        optimizer_config=parse_section(OptimizerInterface.cfgtype, data.get("optimizer"), "optimizer"),
        exmp_input=load_example_batch(run_dir / EXAMPLE_FILE),
        full_config=data,
    )
    if not isinstance(trainer, cls):
        raise TypeError(f"{run_dir} was trained with {type(trainer).__name__}, which is not a {cls.__name__}.")
    trainer.load_model_checkpoint(ckpt)
    return trainer
