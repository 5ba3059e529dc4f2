"""Configuration of the host-side `Logger` and its tools (YAML: ``trainer.logger``)."""

from dataclasses import dataclass, field

from compoconf import ConfigInterface

from .tools import (
    CSVToolLoggerConfig,
    TensorboardToolLoggerConfig,
    ToolLoggerInterface,
    WandBToolLoggerConfig,
)

__all__ = [
    "LoggerConfig",
    "ToolLoggerInterface",
    "TensorboardToolLoggerConfig",
    "CSVToolLoggerConfig",
    "WandBToolLoggerConfig",
]

VERBOSITIES = ("debug", "info", "warning", "error")


@dataclass
class LoggerConfig(ConfigInterface):
    """Where and how often a run logs.

    ``log_dir`` is the run directory (config, checkpoints, metrics JSON, ``train.log`` and, unless a tool
    says otherwise, the tool files). ``tool_config`` is one tool, a list of tools, or None for none.
    ``class_name`` is fixed to "Logger" so configs of the original jax_trainer (``class_name: Logger``) parse.
    """

    class_name: str = field(init=False, default="Logger")
    log_dir: str = "runs/default"
    log_steps_every: int = 50
    log_file_verbosity: str = "info"
    tool_config: (
        ToolLoggerInterface.cfgtype | list[ToolLoggerInterface.cfgtype] | None
    ) = field(default_factory=TensorboardToolLoggerConfig)

    def __post_init__(self):
        if self.log_steps_every < 1:
            raise ValueError(f"log_steps_every must be >= 1, got {self.log_steps_every}.")
        if self.log_file_verbosity not in VERBOSITIES:
            raise ValueError(f"log_file_verbosity must be one of {VERBOSITIES}, got {self.log_file_verbosity!r}.")

    @property
    def tool_configs(self) -> list:
        """``tool_config`` as a list."""
        if self.tool_config is None:
            return []
        if isinstance(self.tool_config, list):
            return list(self.tool_config)
        return [self.tool_config]
