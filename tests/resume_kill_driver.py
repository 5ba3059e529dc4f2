"""Second half of tests/core/test_resume_kill.py, run in a fresh process: for each backend, the
uninterrupted reference run, the resumption of every killed run with ``--ckpt-path last``, and the
reference evaluated on the test split after ``TrainerModule.load_from_checkpoint`` and by
``jax-trainer test --ckpt-path last`` (both results written to a JSON file).

Usage: python resume_kill_driver.py CONFIG OUT_JSON WORKDIR MODE [MODE ...]
"""

import contextlib
import io
import json
import sys
from pathlib import Path

from jax_trainer import cli
from jax_trainer.config import load_config
from jax_trainer.run import build_data
from jax_trainer.trainer import TrainerModule


def main(config: str, out: str, workdir: str, *modes: str) -> None:
    workdir, results = Path(workdir), {}
    for mode in modes:
        overrides = [f"trainer.model_mode={mode}"]
        ref = workdir / f"{mode}_ref"
        assert cli.main(["fit", config, *overrides, f"trainer.logger.log_dir={ref}"]) == 0
        for killed in sorted(workdir.glob(f"{mode}_killed_*")):
            assert cli.main(["fit", config, *overrides, f"trainer.logger.log_dir={killed}", "--ckpt-path", "last"]) == 0
        _, splits = build_data(load_config(config))
        loaded = TrainerModule.load_from_checkpoint(ref)
        results[mode] = {"loaded": loaded.test_model(splits.test)}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # `jax-trainer test --ckpt-path` evaluates the same weights
            assert cli.main(["test", config, *overrides, f"trainer.logger.log_dir={ref}", "--ckpt-path", "last"]) == 0
        results[mode]["cli"] = json.loads(printed.getvalue())["test"]
    Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:])
