"""Weights & Biases logging; ``wandb`` is an optional dependency imported only when this tool is built."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoconf import ConfigInterface, register

from .base import ToolLoggerInterface, jsonable, run_version, tool_dir

_MODES = ("online", "offline", "disabled")


@dataclass
class WandBToolLoggerConfig(ConfigInterface):
    """W&B writes ``wandb/`` under ``(save_dir or log_dir)``.

    ``entity`` is the W&B user or team the run belongs to (None: the account's default).
    ``version`` is the W&B run id: set it and a restarted job continues the same run (``resume="allow"``);
    ``use_timestamp_version`` derives the id from the launch time. ``mode`` defaults to offline: nothing
    leaves the machine unless asked for.
    """

    project: str = "jax_trainer"
    entity: str | None = None
    name: str | None = None
    mode: str = "offline"
    save_dir: str = ""
    version: str | None = None
    use_timestamp_version: bool = False

    def __post_init__(self):
        if self.mode not in _MODES:
            raise ValueError(f"WandBToolLogger mode must be one of {_MODES}, got {self.mode!r}.")


@register
class WandBToolLogger(ToolLoggerInterface):
    """Scalars via ``run.log(step=...)``, the config in ``run.config``, images as ``wandb.Image``.

    W&B streams from its own process, so ``flush`` has nothing to do; ``resume`` keeps the run as it is
    (W&B refuses to rewrite history).
    """

    config: WandBToolLoggerConfig

    def __init__(self, config: WandBToolLoggerConfig, log_dir: Path):
        try:
            import wandb  # pylint: disable=import-outside-toplevel
        except ImportError as err:
            raise ImportError(
                "WandBToolLogger needs the wandb package: pip install 'jax_trainer[wandb]'."
            ) from err
        self.config = config
        self._wandb = wandb
        self.log_dir = tool_dir(log_dir, config.save_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        run_id = run_version(config.version, config.use_timestamp_version)
        self._run = wandb.init(
            project=config.project,
            entity=config.entity,
            name=config.name,
            mode=config.mode,
            dir=str(self.log_dir.resolve()),
            id=run_id,
            resume="allow" if run_id else None,
        )
        self._closed = False

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        self._run.log(dict(metrics), step=step)

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        self._run.config.update(jsonable(config), allow_val_change=True)
        if metrics:
            self._run.summary.update(dict(metrics))

    def log_image(self, key: str, image, step: int) -> None:
        self._run.log({key: self._wandb.Image(image[:, :, 0] if image.shape[2] == 1 else image)}, step=step)

    def flush(self) -> None:
        """Nothing to do: the W&B service process writes on its own."""

    def close(self, status: str = "success") -> None:
        if not self._closed:
            self._run.finish(exit_code=0 if status == "success" else 1)
            self._closed = True


@dataclass
class WandbToolLoggerConfig(WandBToolLoggerConfig):
    """The same fields under the spelling ``WandbToolLogger`` (kpoeppel/jax_trainer's), so its configs load."""

    class_name = ""  # not WandBToolLogger's inherited name: compoconf sets this class's own when it registers


@register
class WandbToolLogger(WandBToolLogger):
    """``WandBToolLogger`` under the spelling ``WandbToolLogger``; a class of its own so both names resolve."""

    config: WandbToolLoggerConfig
