"""Logging tools (TensorBoard, CSV, W&B); importing this package registers them with compoconf."""

from .base import ToolLoggerInterface
from .csv_tool import CSVToolLogger, CSVToolLoggerConfig
from .tensorboard_tool import TensorboardToolLogger, TensorboardToolLoggerConfig
from .wandb_tool import WandbToolLogger, WandbToolLoggerConfig, WandBToolLogger, WandBToolLoggerConfig

__all__ = [
    "ToolLoggerInterface",
    "CSVToolLogger",
    "CSVToolLoggerConfig",
    "TensorboardToolLogger",
    "TensorboardToolLoggerConfig",
    "WandBToolLogger",
    "WandBToolLoggerConfig",
    "WandbToolLogger",
    "WandbToolLoggerConfig",
]
