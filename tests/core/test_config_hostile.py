"""Hostile or nonsensical config values are refused by load_config (and `jax-trainer fit`) with the dotted path or
the file, before anything is written or compiled: non-finite or negative rates, non-positive clip bounds, seeds
outside what jax and numpy take, duplicate YAML keys and non-UTF-8 files."""

from __future__ import annotations

import pytest
import yaml

from jax_trainer.cli import main
from jax_trainer.config import ConfigError, load_config
from jax_trainer.yaml_strict import load_unique
from test_config_errors import base_config, error_of, write

LR = "optimizer.learning_rate"
CLIP = "optimizer.transforms={clip: {class_name: GradClipNorm, max_norm: 1.0}}"
CLIP_VALUE = "optimizer.transforms={clip: {class_name: GradClipValue, max_delta: 1.0}}"

# (overrides, dotted path the error must carry, fragments its message must contain)
REFUSED = [
    ([f"{LR}=.nan"], LR, ["finite", "nan"]),
    ([f"{LR}=.inf"], LR, ["finite", "inf"]),
    ([f"{LR}=-0.1"], LR, [">= 0", "-0.1"]),
    ([f"{LR}.peak_value=.nan"], f"{LR}.peak_value", ["finite"]),
    ([f"{LR}.peak_value=-1e-3"], f"{LR}.peak_value", [">= 0"]),
    ([f"{LR}.init_value=.inf"], f"{LR}.init_value", ["finite"]),
    ([f"{LR}.end_value=-1.0"], f"{LR}.end_value", [">= 0"]),
    ([f"{LR}={{class_name: ConstantSchedule, value: .nan}}"], f"{LR}.value", ["finite"]),
    ([f"{LR}={{class_name: CosineSchedule, init_value: -1.0}}"], f"{LR}.init_value", [">= 0"]),
    ([f"{LR}={{class_name: LinearSchedule, init_value: 0.1, end_value: .inf}}"], f"{LR}.end_value", ["finite"]),
    ([f"{LR}={{class_name: ExponentialSchedule, init_value: .nan, decay_rate: 0.5}}"], f"{LR}.init_value", ["finite"]),
    (
        [f"{LR}={{class_name: ConcatSchedule, boundaries: [5], schedules: "
         "[{class_name: ConstantSchedule, value: 0.1}, {class_name: ConstantSchedule, value: -0.1}]}"],
        f"{LR}.schedules.1.value",
        [">= 0"],
    ),
    ([f"{LR}.steps=2"], f"{LR}.warmup_steps", ["(2) must be less than steps (2)"]),
    ([f"{LR}.decay_steps=0"], f"{LR}.decay_steps", ["> 0"]),
    ([CLIP, "optimizer.transforms.clip.max_norm=-1"], "optimizer.transforms.clip.max_norm", ["> 0", "-1"]),
    ([CLIP, "optimizer.transforms.clip.max_norm=0"], "optimizer.transforms.clip.max_norm", ["> 0"]),
    ([CLIP, "optimizer.transforms.clip.max_norm=.nan"], "optimizer.transforms.clip.max_norm", ["finite"]),
    ([CLIP_VALUE, "optimizer.transforms.clip.max_delta=-0.5"], "optimizer.transforms.clip.max_delta", ["> 0"]),
    (["trainer.seed=9223372036854775808"], "trainer.seed", ["0 <= seed < 2**63"]),
    (["trainer.seed=-1"], "trainer.seed", ["0 <= seed < 2**63"]),
    (["dataset.seed=18446744073709551616"], "dataset.seed", ["0 <= seed < 2**63"]),
    (["dataset.split_seed=-5"], "dataset.split_seed", ["0 <= seed < 2**63"]),
]


@pytest.mark.parametrize("overrides,path,fragments", REFUSED, ids=[" ".join(c[0])[-60:] for c in REFUSED])
def test_hostile_value_is_refused_at_its_path(tmp_path, overrides, path, fragments):
    err = error_of(tmp_path, overrides)
    assert err.path == path, str(err)
    assert str(err).startswith(path)
    for fragment in fragments:
        assert fragment in str(err)


def test_zero_learning_rate_and_largest_seed_are_accepted(tmp_path):
    config = load_config(write(tmp_path, base_config(tmp_path / "run")), [f"{LR}=0.0", f"trainer.seed={2**63 - 1}"])
    assert config.optimizer.learning_rate == 0.0 and config.trainer.seed == 2**63 - 1


def test_duplicate_yaml_key_names_file_key_and_line(tmp_path):
    text = yaml.safe_dump(base_config(tmp_path / "run"), sort_keys=False)
    text = text.replace("  train_epochs: 1\n", "  train_epochs: 1\n  train_epochs: 50\n")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    line = text.splitlines().index("  train_epochs: 50") + 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "duplicate key 'train_epochs'" in message
    assert f"line {line}" in message and f"line {line - 1}" in message


def test_duplicate_top_level_key_through_the_cli(tmp_path, capsys):
    data = base_config(tmp_path / "run")
    text = yaml.safe_dump(data, sort_keys=False) + "seed: 7\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert main(["fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "duplicate key 'seed'" in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_same_key_in_different_mappings_is_fine(tmp_path):
    data = base_config(tmp_path / "run")
    data["dataset"]["seed"] = 3  # `seed` also at the top level: different mappings
    assert load_config(write(tmp_path, data)).dataset.seed == 3


def test_non_utf8_config_file_is_refused(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(yaml.safe_dump(base_config(tmp_path / "run")).encode() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert main(["fit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8 text" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_merge_keys_may_still_be_overridden():
    assert load_unique("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")["other"] == {"x": 3, "y": 2}


def test_warmup_longer_than_the_run_through_the_cli(tmp_path, capsys):
    path = write(tmp_path, base_config(tmp_path / "run"))
    assert main(["fit", str(path), f"{LR}.warmup_steps=1000"]) == 2
    err = capsys.readouterr().err
    assert f"{LR}.warmup_steps (1000)" in err and "Traceback" not in err
