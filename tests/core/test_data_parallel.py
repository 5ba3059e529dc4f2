"""Data parallelism: 8 forced CPU devices give the same parameters as one device for the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

DRIVER = Path(__file__).parents[1] / "data_parallel_driver.py"


def _run(mode: str, devices: int, tmp_path: Path) -> dict:
    out = tmp_path / f"{mode}_{devices}.npz"
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, str(DRIVER), mode, str(out), str(tmp_path / f"log_{mode}_{devices}")],
        check=True, env=env, cwd=DRIVER.parent, capture_output=True, timeout=300,
    )
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def test_eight_devices_match_one(tmp_path, mode):
    one, eight = _run(mode, 1, tmp_path), _run(mode, 8, tmp_path)
    assert int(one.pop("__devices__")) == 1 and int(eight.pop("__devices__")) == 8
    np.testing.assert_allclose(eight.pop("__val_acc__"), one.pop("__val_acc__"), atol=1e-6)
    assert one.keys() == eight.keys()
    for key in one:
        np.testing.assert_allclose(eight[key], one[key], atol=1e-5, rtol=1e-5, err_msg=key)
