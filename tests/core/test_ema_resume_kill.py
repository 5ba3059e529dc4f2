"""The EMA of the weights survives SIGKILL and ``--ckpt-path last`` bitwise, both backends, through the command line.

The helpers and the driver are those of tests/core/test_resume_kill.py: a run with ``trainer.ema`` (averaging from
step 3, used for evaluation) is killed at a random step after a checkpoint, resumed in a fresh process, and must end
with the uninterrupted run's state (``model/ema/...`` included) and metric files bitwise; the reference rebuilt by
``load_from_checkpoint`` and ``jax-trainer test`` must evaluate the average (the test metrics of the run itself).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading

import numpy as np
from test_resume_kill import CONFIG, MODES, TESTS, _after_step, _epoch_files, _final_state, _fit_until_killed

from jax_trainer.checkpoint import committed_steps
from trainer_helpers import subprocess_env

EMA = "  ema: {decay: 0.9, start_step: 3, use_for_eval: true}\n"
EMA_CONFIG = CONFIG.replace("  train_epochs: 2\n", "  train_epochs: 2\n" + EMA)


def test_ema_survives_sigkill_and_resume_bitwise(tmp_path):
    assert EMA_CONFIG != CONFIG
    config = tmp_path / "config.yaml"
    config.write_text(EMA_CONFIG)
    rng = random.Random(1)
    threads = [
        threading.Thread(
            target=_fit_until_killed,
            args=(config, mode, tmp_path / f"{mode}_killed_random", 0.05, _after_step(rng.randint(8, 16))),
        )
        for mode in MODES
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    driver = subprocess.Popen(
        [sys.executable, str(TESTS / "resume_kill_driver.py"), str(config), str(tmp_path / "evals.json"), str(tmp_path),
         *MODES],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=subprocess_env(tmp_path),
    )
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err.decode()[-3000:]
    evaluations = json.loads((tmp_path / "evals.json").read_text())
    for mode in MODES:
        ref, run = tmp_path / f"{mode}_ref", tmp_path / f"{mode}_killed_random"
        reference, resumed = _final_state(ref), _final_state(run)
        ema = [key for key in reference if key[:2] == ("model", "ema")]
        assert ("model", "ema", "step") in ema and len(ema) > 2, sorted(reference)
        assert resumed.keys() == reference.keys()
        for key, value in reference.items():
            assert value.dtype == resumed[key].dtype and np.array_equal(value, resumed[key]), (mode, key)
        assert _epoch_files(run) == _epoch_files(ref), mode
        assert committed_steps(run / "checkpoints") == committed_steps(ref / "checkpoints")
        test_file = json.loads(next((ref / "metrics").glob("test_epoch_*.json")).read_text())
        for how, metrics in evaluations[mode].items():
            for key, value in metrics.items():
                assert abs(value - test_file[key]) <= 1e-6, (mode, how, key)
