"""``trainer.ema`` in a config file: off by default, a mapping of its three fields, bad values named by path."""

from __future__ import annotations

import pytest
from test_config_errors import base_config, error_of, write

from jax_trainer.config import load_config
from jax_trainer.trainer.ema import EMAConfig


def test_off_by_default_and_parsed_when_given(tmp_path):
    assert load_config(write(tmp_path, base_config(tmp_path / "run"))).trainer.ema is None
    data = base_config(tmp_path / "run")
    data["trainer"]["ema"] = {"decay": 0.99, "start_step": 10, "use_for_eval": True}
    assert load_config(write(tmp_path, data)).trainer.ema == EMAConfig(decay=0.99, start_step=10, use_for_eval=True)


@pytest.mark.parametrize(
    "ema, path, fragment",
    [
        ({"decay": 1.5}, "trainer.ema.decay", "trainer.ema.decay must be in [0, 1), got 1.5"),
        ({"decay": 0.9, "start_step": -1}, "trainer.ema.start_step", "trainer.ema.start_step must be >= 0"),
        ({"decay": 0.9, "momentum": 0.9}, "trainer.ema.momentum", "unknown key"),
        ({"decay": "high"}, "trainer.ema.decay", "expected float"),
    ],
)
def test_bad_values_are_named(tmp_path, ema, path, fragment):
    data = base_config(tmp_path / "run")
    data["trainer"]["ema"] = ema
    err = error_of(tmp_path, data=data)
    assert err.path == path and fragment in str(err), (err.path, str(err))
