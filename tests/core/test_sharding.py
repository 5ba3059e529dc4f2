"""Sharded train state (issue 13): on 8 forced CPU devices ``trainer.mesh: {data: 1, fsdp: 8}`` leaves each device
about 1/8 of the parameter and optimizer-state bytes and trains exactly as the replicated state does; a mesh or rule
that cannot be laid out fails at build, naming the field and the parameter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jax_trainer.errors import InputError
from jax_trainer.parallel import MeshError
from trainer_helpers import classifier

DRIVER = Path(__file__).parents[1] / "data_parallel_driver.py"


def _run(mode: str, tmp_path: Path, mesh: str = "") -> dict:
    out = tmp_path / f"{mode}_{mesh or 'replicated'}.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, str(DRIVER), mode, str(out), str(tmp_path / f"log_{mode}_{mesh}"), mesh],
        check=True, env=env, cwd=DRIVER.parent, capture_output=True, timeout=300,
    )
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def test_fsdp_shards_the_state_eight_ways_and_trains_as_replicated(tmp_path, mode):
    replicated, sharded = _run(mode, tmp_path), _run(mode, tmp_path, "data=1,fsdp=8")
    assert int(replicated["__max_device_bytes__"]) == int(replicated["__state_bytes__"])  # every device: all of it
    share = int(sharded.pop("__max_device_bytes__")) / int(sharded.pop("__state_bytes__"))
    assert share <= 1 / 8 * 1.1, share
    # One compile for the whole run: host-made metric accumulators reach the step in the layout it returns them in.
    assert int(sharded.pop("__train_step_compiles__")) == int(replicated.pop("__train_step_compiles__")) == 1
    for key in ("__max_device_bytes__", "__state_bytes__"):
        replicated.pop(key)
    assert replicated.keys() == sharded.keys()
    for key in replicated:
        np.testing.assert_allclose(sharded[key], replicated[key], atol=1e-5, rtol=1e-5, err_msg=key)


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"mesh": {"data": 3}}, "trainer.mesh {'data': 3}: the axis sizes multiply to 3, but there are 1 devices"),
        ({"mesh": {"data": -1}, "sharding_rules": [["kernel", ["tensor", None]]]},
         "trainer.sharding_rules[0]: axis 'tensor' (for params/head/kernel) is not an axis of trainer.mesh"),
        ({"mesh": {"data": -1, "fsdp": 1}, "sharding_rules": [["l1/kernel", ["fsdp"]]]},
         "trainer.sharding_rules[0]: spec ['fsdp'] has 1 dimension(s), but params/l1/kernel has shape [64, 64]"),
        ({"sharding_rules": [["kernel", [None, None]]]}, "trainer.sharding_rules needs a mesh: set trainer.mesh"),
    ],
)
def test_a_mesh_that_cannot_be_laid_out_fails_at_build_naming_the_field(tmp_path, settings, expected):
    with pytest.raises(MeshError) as err:
        classifier("linen", tmp_path / "run", **settings)
    assert isinstance(err.value, InputError)
    assert expected in str(err.value)
    assert not (tmp_path / "run").exists()  # raised before the run directory is written


@pytest.mark.parametrize(
    "mesh, expected",
    [({"data": 0}, "trainer.mesh.data must be a positive integer or -1"),
     ({"data": -1, "fsdp": -1}, "at most one axis may be -1")],
)
def test_a_malformed_mesh_fails_in_the_config(tmp_path, mesh, expected):
    with pytest.raises(ValueError, match=expected):
        classifier("nnx", tmp_path / "run", mesh=mesh)


def test_the_sharded_state_is_made_where_it_lives(tmp_path, mode):
    """With ``fsdp: 8`` the model and optimizer state are built sharded, never whole on one device and then spread:
    the build succeeds while jax refuses every device-to-device copy, and every array is split 8 ways where one of
    its dimensions allows it (a model too large for one device can be initialised)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "JAX_PLATFORMS": "cpu"}
    driver = DRIVER.parent / "sharded_init_driver.py"
    proc = subprocess.run([sys.executable, str(driver), mode, str(tmp_path / "run")], env=env, cwd=DRIVER.parent,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shapes = json.loads(proc.stdout.strip().splitlines()[-1])
    kernels = {path: shape for path, shape in shapes.items() if "kernel" in path}
    assert len(kernels) == 9  # 3 kernels: parameters, Adam's mu and nu
    for path, (whole, shard) in shapes.items():
        if any(dim % 8 == 0 for dim in whole):
            assert np.prod(shard) * 8 == np.prod(whole), (path, whole, shard)
        else:
            assert shard == whole, path
