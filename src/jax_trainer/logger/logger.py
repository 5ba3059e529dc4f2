"""`Logger`: validates host metrics once and fans them out to the configured tools and the run directory."""

import collections
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from ..files import RunDirLock, write_atomic
from .config import LoggerConfig
from .enums import LogMode
from .keys import epoch_file_stem
from .text_log import setup_text_log, teardown_text_log
from .tools import ToolLoggerInterface
from .tools.images import as_uint8_image

LOGGER = logging.getLogger(__name__)
_EPOCH_MODES = ("train", "val", "test")
_STATUSES = ("success", "failed", "interrupted")
# Deferred writes run in batches, at most every BATCH_SECS: on a small model an epoch takes milliseconds, and
# writing after each one puts cold Python paths and system calls between steps, host time taken from the device
# on a small machine.
BATCH_SECS = 0.5


def as_float(key: str, value: Any) -> float:
    """A host float from a Python/NumPy/JAX scalar; anything with more than zero dimensions is an error."""
    if isinstance(value, (str, bytes)) or getattr(value, "ndim", 0) != 0 or isinstance(value, (list, tuple, dict)):
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(f"Metric {key!r} must be a scalar, got {shape}.")
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Metric {key!r} must be a scalar number, got {type(value).__name__}.") from err


class Logger:
    """Host side of logging for one run; only process 0 writes anything.

    Files in ``log_dir``: ``train.log``, ``metrics/<mode>_epoch_NNNN.json`` and whatever the tools write
    (TensorBoard event files by default). Values must already be on the host: the trainer fetches them
    once per log window, so nothing here forces a device sync per step.
    """

    def __init__(self, config: LoggerConfig, log_dir: str | Path | None = None):
        self.config = config
        self.log_dir = Path(config.log_dir if log_dir is None else log_dir)
        self.is_main_process = jax.process_index() == 0
        self.last_step: int | None = None
        self._finalized = False
        self._text_handler = None
        self._lock: RunDirLock | None = None
        self._metrics_dir: str | None = None
        self._pending: collections.deque = collections.deque()  # (write, ready, time deferred), oldest first
        self._writing = False
        self.tools: list[ToolLoggerInterface] = []
        if not self.is_main_process:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunDirLock(self.log_dir)
        self._lock.acquire()  # before anything is written: a second run into this directory stops here
        self._text_handler = setup_text_log(self.log_dir, config.log_file_verbosity)
        try:
            for tool_config in config.tool_configs:
                self.tools.append(tool_config.instantiate(ToolLoggerInterface, self.log_dir))
        except BaseException:
            self.finalize("failed")
            raise

    def _seen(self, step: int) -> None:
        self.last_step = step if self.last_step is None else max(self.last_step, step)

    def _before_write(self) -> None:
        """Refuse writes after ``finalize``; run deferred writes first, so that writes keep their order."""
        if self._finalized:
            raise RuntimeError("Logger was finalized; create a new one to log again.")
        self.write_pending()

    def defer(self, write: Callable[[], None], ready: Callable[[], bool] | None = None) -> None:
        """Run ``write`` (logging calls) at a later ``write_pending()``, or first thing in any later call that
        writes or reads this log, so the order of writes is kept. ``ready`` tells whether the device values
        ``write`` reads are computed.

        The trainer defers its epoch reports and step-window logs with readiness checks, so that reading them never
        waits for the device and their I/O never stands between two dispatches. Both are written in batches
        (``BATCH_SECS``).
        """
        self._pending.append((write, ready, time.monotonic()))

    def write_pending(self, wait: bool = True) -> None:
        """Run the deferred writes, oldest first. ``wait=False`` (the loops call it after every step) writes only
        once the oldest is ``BATCH_SECS`` old, and stops at the first write whose values are not ready yet
        rather than waiting for the device."""
        if self._writing:  # a deferred write logging through this logger: the loop below keeps the order
            return
        if not wait and (not self._pending or time.monotonic() - self._pending[0][2] < BATCH_SECS):
            return
        self._writing = True
        try:
            while self._pending:
                write, ready, _ = self._pending[0]
                if not wait and ready is not None and not ready():
                    return
                self._pending.popleft()
                write()
        finally:
            self._writing = False

    def log_hparams(self, config: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
        """Record the resolved config (TensorBoard hparams plugin, W&B config, CSV tool's hparams.json)."""
        self._before_write()
        metrics = None if metrics is None else {k: as_float(k, v) for k, v in metrics.items()}
        for tool in self.tools:
            tool.log_hparams(config, metrics)

    def log_scalars(self, metrics: dict[str, Any], step: int) -> None:
        """Write scalars to every tool at ``step``; a non-scalar value raises naming its key (NaN passes)."""
        self._before_write()
        values = {key: as_float(key, value) for key, value in metrics.items()}
        if not values:
            return
        self._seen(step)
        for tool in self.tools:
            tool.log_scalars(values, step)

    def log_epoch_metrics(
        self, metrics: dict[str, Any], epoch: int, mode: str | LogMode, step: int, loader: str | None = None
    ) -> None:
        """Scalars to every tool and ``metrics/<mode>_epoch_NNNN.json`` with the metrics, "epoch" and "step"; the
        metrics of a named val/test ``loader`` go to ``metrics/<mode>_<loader>_epoch_NNNN.json``."""
        self._before_write()
        mode = mode.name.lower() if isinstance(mode, LogMode) else mode
        if mode not in _EPOCH_MODES:
            raise ValueError(f"Epoch metrics mode must be one of {_EPOCH_MODES}, got {mode!r}.")
        values = {key: as_float(key, value) for key, value in metrics.items()}
        clash = {"epoch", "step"} & set(values)
        if clash:
            raise ValueError(f"Metric names {sorted(clash)} are reserved in the epoch metrics file.")
        self.log_scalars(values, step)
        self._seen(step)
        if not self.is_main_process:
            return
        if self._metrics_dir is None:  # created once: mkdir(exist_ok=True) costs a failing system call each time
            self._metrics_dir = os.path.join(self.log_dir, "metrics")
            os.makedirs(self._metrics_dir, exist_ok=True)
        # One line: json's C encoder only serves indent=None, and this runs after every epoch.
        text = json.dumps({**values, "epoch": epoch, "step": step}, allow_nan=True)
        write_atomic(f"{self._metrics_dir}/{epoch_file_stem(mode, loader)}_epoch_{epoch:04d}.json", text)

    def log_image(self, key: str, image, step: int) -> None:
        """Write an (H, W, C) image, uint8 or float in [0, 1], to every tool."""
        self._before_write()
        array = as_uint8_image(key, image)
        self._seen(step)
        for tool in self.tools:
            tool.log_image(key, array, step)

    def log_figure(self, key: str, figure, step: int) -> None:
        """Render a matplotlib figure with Agg, log it as an image and close it."""
        from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel

        try:
            canvas = FigureCanvasAgg(figure)
            canvas.draw()
            image = np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
        finally:
            plt.close(figure)
        self.log_image(key, image, step)

    def flush(self) -> None:
        """Push everything written so far to disk."""
        self.write_pending()
        for tool in self.tools:
            tool.flush()
        if self._text_handler is not None:
            self._text_handler.flush()

    def finalize(self, status: str) -> None:
        """Close every tool with ``status`` ("success", "failed", "interrupted"); later calls do nothing."""
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {status!r}.")
        if self._finalized:
            return
        errors = []
        try:
            self.write_pending()
        except Exception as err:  # pylint: disable=broad-except  # the tools must still be closed
            errors.append(err)
            LOGGER.exception("Writing deferred metrics failed.")
        self._finalized = True
        LOGGER.info("Run in %s finished: %s.", self.log_dir, status)
        for tool in self.tools:
            try:
                tool.close(status)
            except Exception as err:  # pylint: disable=broad-except
                errors.append(err)
                LOGGER.exception("Closing %s failed.", type(tool).__name__)
        if self._text_handler is not None:
            teardown_text_log(self._text_handler)
        if self._lock is not None:
            self._lock.release()
        if errors:
            raise errors[0]

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this log: the last step written (JSON-able). Everything is
        written and flushed first, so a checkpoint recording this state never outlives the logs it counts on."""
        self.flush()
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue logging after a resume: what the interrupted run wrote after ``last_step`` is discarded.

        TensorBoard gets a restart marker, the CSV rows and epoch JSON files past that step are removed. Call it
        only when training resumes into the same ``log_dir``, not when merely evaluating a checkpoint.
        """
        self._before_write()
        self.last_step = state["last_step"]
        if not self.is_main_process:
            return
        step = -1 if self.last_step is None else self.last_step
        for tool in self.tools:
            tool.resume(step)
        for path in sorted((self.log_dir / "metrics").glob("*_epoch_*.json")):
            if json.loads(path.read_text()).get("step", math.inf) > step:
                path.unlink()
