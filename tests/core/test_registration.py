"""One config class per registered class (``jax_trainer.registration``): subclassing a registered trainer or model
without a config class keeps the parent registered; one config class declared for two differently named models is
an error naming both. And a run trained from Python with the user's own classes reloads in a new process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass

import numpy as np
import pytest
from compoconf import ConfigInterface, register

from jax_trainer.backends import parse_model_config
from jax_trainer.config_errors import parse_section
from jax_trainer.trainer import ImgClassifierTrainer
from jax_trainer.trainer.config import TrainerInterface
from jax_trainer.trainer.tasks import ImgClassifierTrainerConfig
from jax_trainer.zoo.base import BaseModelLinen, BaseModelNNX
from jax_trainer.zoo.configs import MLPClassifierConfig
from jax_trainer.zoo.nnx.mlp import MLPClassifier as NNXMLPClassifier
from trainer_helpers import subprocess_env


@register
class GuideSubTrainer(ImgClassifierTrainer):
    """Overrides nothing and declares no config class: the user's first subclass."""


@register
class GuideWideMLP(NNXMLPClassifier):
    """A zoo nnx model subclassed without a config class of its own."""


def test_trainer_subclass_without_config_keeps_the_builtin_registered():
    assert ImgClassifierTrainerConfig.class_name == "ImgClassifierTrainer"
    builtin = parse_section(TrainerInterface.cfgtype, {"class_name": "ImgClassifierTrainer"}, "trainer")
    sub = parse_section(TrainerInterface.cfgtype, {"class_name": "GuideSubTrainer", "num_classes": 3}, "trainer")
    assert type(builtin) is ImgClassifierTrainerConfig
    assert isinstance(sub, ImgClassifierTrainerConfig) and type(sub).__name__ == "GuideSubTrainerConfig"
    assert sub.num_classes == 3 and sub.class_name == "GuideSubTrainer"


def test_model_subclass_without_config_keeps_the_zoo_model_registered():
    assert MLPClassifierConfig.class_name == "MLPClassifier"
    for mode in ("linen", "nnx"):
        assert type(parse_model_config(mode, {"class_name": "MLPClassifier"})) is MLPClassifierConfig
    wide = parse_model_config("nnx", {"class_name": "GuideWideMLP", "hidden_dims": [8]})
    assert isinstance(wide, MLPClassifierConfig) and wide.class_name == "GuideWideMLP"
    hash(wide)  # configs are static data in linen modules and nnx graphdefs: the derived class stays hashable


@dataclass
class SharedConfig(ConfigInterface):
    width: int = 4


def _linen_net():
    import flax.linen as nn  # pylint: disable=import-outside-toplevel

    @register
    class GuideLinenNet(nn.Module, BaseModelLinen):
        config: SharedConfig

        @nn.compact
        def __call__(self, x, train: bool = False):
            return nn.Dense(self.config.width)(x)

    return GuideLinenNet


def test_one_config_for_two_differently_named_models_is_an_error_naming_both():
    from flax import nnx  # pylint: disable=import-outside-toplevel

    _linen_net()
    with pytest.raises(TypeError, match=r"GuideNNXNet: config class SharedConfig is already the config class of .*GuideLinenNet"):

        class GuideNNXNet(nnx.Module, BaseModelNNX):  # pylint: disable=unused-variable
            config: SharedConfig

    assert SharedConfig.class_name == "GuideLinenNet"  # the first registration is intact
    assert parse_model_config("linen", {"class_name": "GuideLinenNet"}).width == 4


USER_MODELS = '''
import math
from dataclasses import dataclass

from compoconf import ConfigInterface, register
from flax import nnx

from jax_trainer.zoo.base import BaseModelNNX


@dataclass
class TinyNetConfig(ConfigInterface):
    width: int = 8


@register
class TinyNet(nnx.Module, BaseModelNNX):
    config: TinyNetConfig

    def __init__(self, config, *, rngs, exmp_input):
        self.config = config
        self.hidden = nnx.Linear(math.prod(exmp_input.shape[1:]), config.width, rngs=rngs)
        self.head = nnx.Linear(config.width, 10, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))
'''

USER_TRAINERS = '''
from compoconf import register

from jax_trainer.trainer import ImgClassifierTrainer


@register
class TinyTrainer(ImgClassifierTrainer):
    pass
'''

RELOAD = '''
import sys
import numpy as np
from jax_trainer.checkpoint.rundir import load_example_batch
from jax_trainer.trainer import TrainerModule

run = sys.argv[1]
trainer = TrainerModule.load_from_checkpoint(run)
x = load_example_batch(run + "/exmp_input.npz").input
np.savez(sys.argv[2], outputs=np.asarray(trainer.bind_model()(x)), cls=np.array(type(trainer).__name__))
'''


def test_a_python_built_run_with_user_classes_reloads_in_a_new_process(tmp_path, monkeypatch):
    from jax_trainer.callbacks import ModelCheckpointConfig
    from jax_trainer.logger.config import LoggerConfig
    from jax_trainer.optimizer import AdamWConfig
    from trainer_helpers import digits_splits

    code = tmp_path / "code"
    code.mkdir()
    (code / "jt_guide_models.py").write_text(textwrap.dedent(USER_MODELS))
    (code / "jt_guide_trainers.py").write_text(textwrap.dedent(USER_TRAINERS))
    monkeypatch.syspath_prepend(str(code))
    import jt_guide_models  # pylint: disable=import-outside-toplevel,import-error
    import jt_guide_trainers  # pylint: disable=import-outside-toplevel,import-error

    splits = digits_splits(batch_size=128)
    run = tmp_path / "run"
    config = ImgClassifierTrainerConfig(
        train_epochs=1, enable_progress_bar=False, logger=LoggerConfig(log_dir=str(run)),
        callbacks={"ckpt": ModelCheckpointConfig(save_last=True)},
    )
    trainer = jt_guide_trainers.TinyTrainer(config, jt_guide_models.TinyNetConfig(), AdamWConfig(), next(iter(splits.train)))
    trainer.train_model(splits.train)
    trainer.checkpointer.close()
    from jax_trainer.checkpoint.rundir import load_example_batch  # pylint: disable=import-outside-toplevel

    x = load_example_batch(run / "exmp_input.npz").input

    env = subprocess_env(tmp_path)
    env["PYTHONPATH"] = f"{code}:{env['PYTHONPATH']}"  # the user's folder, as when they run from it
    out = tmp_path / "reloaded.npz"
    done = subprocess.run([sys.executable, "-c", RELOAD, str(run), str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(out) as reloaded:
        assert str(reloaded["cls"]) == "TinyTrainer"
        np.testing.assert_array_equal(reloaded["outputs"], np.asarray(trainer.bind_model()(x)))
