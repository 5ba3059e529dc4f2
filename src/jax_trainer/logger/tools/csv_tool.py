"""Plain-file logging for users without TensorBoard: a long-format CSV, the config as JSON, PNG images."""

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoconf import ConfigInterface, register

from ...files import write_atomic
from .base import ToolLoggerInterface, jsonable, tool_dir
from .images import encode_png

_HEADER = ["step", "key", "value"]


@dataclass
class CSVToolLoggerConfig(ConfigInterface):
    """Files go to ``(save_dir or log_dir)``: ``<filename>``, ``hparams.json`` and ``images/<key>/<step>.png``."""

    save_dir: str = ""
    filename: str = "metrics.csv"


@register
class CSVToolLogger(ToolLoggerInterface):
    """One row per value, columns ``step,key,value`` (long format: new metrics never change the header).

    Values are written with ``repr`` of the Python float, so they read back bit-exactly.
    """

    config: CSVToolLoggerConfig

    def __init__(self, config: CSVToolLoggerConfig, log_dir: Path):
        self.config = config
        self.log_dir = tool_dir(log_dir, config.save_dir)
        self.path = self.log_dir / config.filename
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._file = None
        self._open()

    def _open(self) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(_HEADER)

    def log_scalars(self, metrics: dict[str, float], step: int) -> None:
        self._writer.writerows([step, key, repr(value)] for key, value in metrics.items())

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        record = {"config": jsonable(config), "metrics": dict(metrics or {})}
        write_atomic(self.log_dir / "hparams.json", json.dumps(record, indent=2))
        if metrics:
            self.log_scalars(metrics, 0)

    def log_image(self, key: str, image, step: int) -> None:
        folder = self.log_dir / "images" / re.sub(r"[^\w.-]+", "_", key)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{step:08d}.png").write_bytes(encode_png(image))

    def resume(self, step: int) -> None:
        """Drop the rows the interrupted run wrote after ``step``, then keep appending."""
        self._file.close()
        with open(self.path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle)][1:]
        kept = io.StringIO(newline="")
        writer = csv.writer(kept)
        writer.writerow(_HEADER)
        writer.writerows(row for row in rows if len(row) == 3 and row[0].isdigit() and int(row[0]) <= step)
        write_atomic(self.path, kept.getvalue())
        self._open()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self, status: str = "success") -> None:
        self._file.close()
