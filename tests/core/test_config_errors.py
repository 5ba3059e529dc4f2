"""Every bad config input fails in load_config with the dotted path of the field and what was expected."""

from __future__ import annotations

import pytest
import yaml

from jax_trainer.config import ConfigError, load_config


def base_config(log_dir) -> dict:
    return {
        "seed": 0,
        "trainer": {
            "class_name": "ImgClassifierTrainer",
            "model_mode": "nnx",
            "train_epochs": 1,
            "enable_progress_bar": False,
            "logger": {"log_dir": str(log_dir), "tool_config": None},
        },
        "model": {"class_name": "MLPClassifier", "hidden_dims": [8]},
        "optimizer": {
            "class_name": "AdamW",
            "learning_rate": {"class_name": "WarmupCosineDecaySchedule", "peak_value": 1e-3, "warmup_steps": 2},
        },
        "dataset": {"class_name": "DigitsDataset", "global_batch_size": 64},
    }


def write(tmp_path, data: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def error_of(tmp_path, overrides=(), data=None) -> ConfigError:
    path = write(tmp_path, data or base_config(tmp_path / "run"))
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    return info.value


# (overrides, dotted path the error must carry, fragments its message must contain)
OVERRIDE_CASES = [
    (["trainer.train_epochs=abc"], "trainer.train_epochs", ["expected int", "'abc'", "trainer.train_epochs=abc"]),
    (["trainer.train_epochs=2.5"], "trainer.train_epochs", ["expected int", "2.5"]),
    (["trainer.train_epochs=0"], "trainer.train_epochs", [">= 1"]),
    (["trainer.enable_progress_bar=maybe"], "trainer.enable_progress_bar", ["bool"]),
    (["trainer.epochs=3"], "trainer.epochs", ["unknown key", "train_epochs"]),
    (["optimizer.learning_rate.peak_value=high"], "optimizer.learning_rate.peak_value", ["expected float"]),
    (["optimizer.learning_rate=fast"], "optimizer.learning_rate", ["float", "WarmupCosineDecaySchedule"]),
    (
        ["optimizer.learning_rate.decay_steps=10", "optimizer.learning_rate.steps=100"],
        "optimizer.learning_rate.decay_steps",
        ["must equal steps - warmup_steps"],
    ),
    (["optimizer.learning_rate.warmup_steps=null"], "optimizer.learning_rate.warmup_steps", ["expected int", "null"]),
    (["model.hidden_dims=[8, -1]"], "model.hidden_dims", ["positive"]),
    (["model.hidden_dims.0=wide"], "model.hidden_dims.0", ["expected int"]),
    (["dataset.global_batch_size=0"], "dataset.global_batch_size", ["positive"]),
    (["trainer.logger.log_file_verbosity=loud"], "trainer.logger.log_file_verbosity", ["one of"]),
    (["trainer.logger.class_name=TextLogger"], "trainer.logger.class_name", ["'Logger'"]),
    (["trainer.model_mode=foo"], "trainer.model_mode", ["'foo'", "linen", "nnx"]),
    (["seed=[1, 2]"], "seed", ["expected int", "list"]),
    (["model=null"], "model", ["MLPClassifier", "null"]),
    (["imports=[jax_trainer_no_such_module]"], "imports.0", ["jax_trainer_no_such_module", "not found"]),
]


@pytest.mark.parametrize("overrides,path,fragments", OVERRIDE_CASES, ids=[" ".join(c[0]) for c in OVERRIDE_CASES])
def test_bad_override_names_dotted_path(tmp_path, overrides, path, fragments):
    err = error_of(tmp_path, overrides)
    assert err.path == path
    assert str(err).startswith(path)
    for fragment in fragments:
        assert fragment in str(err)


# (overrides, dotted path of class_name, the names registered for that field, names of other fields' registries)
CLASS_NAME_CASES = [
    (["optimizer.class_name=AdamV"], "optimizer.class_name", ["AdamW", "SGD", "Lamb"], ["MLPClassifier"]),
    (["model.class_name=Transformer"], "model.class_name", ["MLPClassifier", "CNNClassifier"], ["AdamW"]),
    (["trainer.class_name=GANTrainer"], "trainer.class_name", ["ImgClassifierTrainer", "RegressionTrainer"], []),
    (["dataset.class_name=ImageNet"], "dataset.class_name", ["DigitsDataset", "CIFAR10Dataset"], ["AdamW"]),
    (
        ["optimizer.learning_rate.class_name=OneCycle"],
        "optimizer.learning_rate.class_name",
        ["WarmupCosineDecaySchedule", "ConstantSchedule"],
        ["GradClipNorm", "AdamW"],
    ),
    (
        ["optimizer.transforms={clip: {class_name: ClipEverything}}"],
        "optimizer.transforms.clip.class_name",
        ["GradClipNorm", "WeightDecay"],
        ["WarmupCosineDecaySchedule"],
    ),
    (
        ["trainer.logger.tool_config={class_name: MLflow}"],
        "trainer.logger.tool_config.class_name",
        ["TensorboardToolLogger", "WandBToolLogger"],
        ["AdamW"],
    ),
    (
        ["trainer.logger.tool_config=[{class_name: TensorboardToolLogger}, {class_name: MLflow}]"],
        "trainer.logger.tool_config.1.class_name",
        ["TensorboardToolLogger"],
        [],
    ),
]


@pytest.mark.parametrize("overrides,path,registered,foreign", CLASS_NAME_CASES, ids=[c[1] for c in CLASS_NAME_CASES])
def test_unknown_class_name_lists_that_fields_registry(tmp_path, overrides, path, registered, foreign):
    err = error_of(tmp_path, overrides)
    assert err.path == path
    message = str(err)
    assert "unknown class_name" in message
    listed = message.split("registered for this field:")[1].split("]")[0]
    for name in registered:
        assert f"'{name}'" in listed
    for name in foreign:
        assert f"'{name}'" not in listed


def test_close_class_name_is_suggested(tmp_path):
    assert "did you mean 'AdamW'" in str(error_of(tmp_path, ["optimizer.class_name=adamw"]))


def test_errors_in_the_file_name_the_file(tmp_path):
    data = base_config(tmp_path / "run")
    data["trainer"]["logger"]["log_step_every"] = 10
    err = error_of(tmp_path, data=data)
    assert err.path == "trainer.logger.log_step_every"
    assert "did you mean 'log_steps_every'" in str(err)
    assert str(tmp_path / "config.yaml") in str(err)


def test_missing_required_field(tmp_path):
    data = base_config(tmp_path / "run")
    del data["optimizer"]["learning_rate"]["peak_value"]
    err = error_of(tmp_path, data=data)
    assert err.path == "optimizer.learning_rate.peak_value"
    assert "required" in str(err)


def test_missing_class_name_in_a_union(tmp_path):
    data = base_config(tmp_path / "run")
    del data["optimizer"]["class_name"]
    err = error_of(tmp_path, data=data)
    assert err.path == "optimizer"
    assert "class_name is missing" in str(err) and "AdamW" in str(err)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("trainer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(tmp_path / "list.yaml")


def test_malformed_overrides(tmp_path):
    path = write(tmp_path, base_config(tmp_path / "run"))
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(path, ["trainer.train_epochs"])
    with pytest.raises(ConfigError, match="not a mapping") as info:
        load_config(path, ["trainer.model_mode.x=1"])
    assert info.value.path == "trainer.model_mode.x"
    with pytest.raises(ConfigError, match="no item 3") as info:
        load_config(path, ["model.hidden_dims.3=4"])


def test_model_without_an_implementation_for_the_backend(tmp_path, monkeypatch):
    """A model registered for one backend only is refused under the other, naming model.class_name."""
    (tmp_path / "jt_test_linen_only_model.py").write_text(
        "from dataclasses import dataclass\n"
        "from compoconf import ConfigInterface, register\n"
        "from jax_trainer.zoo.base import BaseModelLinen\n"
        "@dataclass\n"
        "class LinenOnlyConfig(ConfigInterface):\n"
        "    width: int = 4\n"
        "@register\n"
        "class LinenOnly(BaseModelLinen):\n"
        "    config: LinenOnlyConfig\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    err = error_of(
        tmp_path, ["imports=[jt_test_linen_only_model]", "model={class_name: LinenOnly}", "trainer.model_mode=nnx"]
    )
    assert err.path == "model.class_name"
    assert "no nnx implementation" in str(err) and "linen" in str(err)


def test_user_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "jt_test_broken_module.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = error_of(tmp_path, ["imports=[jax_trainer.zoo, jt_test_broken_module]"])
    assert err.path == "imports.1"
    assert "RuntimeError: boom" in str(err)
