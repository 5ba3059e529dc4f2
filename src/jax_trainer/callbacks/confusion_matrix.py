"""ConfusionMatrixCallback: a confusion-matrix figure per validation/test epoch, plus the raw counts on disk.

The counts come from the epoch's gathered (CONCAT) metrics, which never leave the device per step:
``<mode>/preds`` and ``<mode>/labels`` (``ImgClassifierTrainerConfig.log_predictions: true``), or a
``<mode>/conf_matrix`` metric the loss function returns per batch as a (C, C) count matrix in CONCAT mode
(summed here over the batches).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
from compoconf import register

from jax_trainer.callbacks.base import Callback, CallbackConfig

LOGGER = logging.getLogger("jax_trainer")


@dataclass
class ConfusionMatrixConfig(CallbackConfig):
    """Rows are true labels, columns predictions. ``normalize`` shows each row as fractions of its class;
    ``format`` is the cell annotation format (default ``.2%`` when normalized, else ``d``)."""

    normalize: bool = False
    cmap: str = "Blues"
    figsize: tuple[float, float] = (8.0, 8.0)
    format: Optional[str] = None
    dpi: int = 100


@register
class ConfusionMatrixCallback(Callback):
    """Logs ``<mode>/confusion_matrix`` as an image and saves ``confusion_matrix/<mode>_epoch_NNNN.npy``."""

    config: ConfusionMatrixConfig

    def on_filtered_validation_epoch_end(self, eval_metrics: dict, epoch_idx: int) -> None:
        self._report(eval_metrics, "val", epoch_idx)

    def on_filtered_test_epoch_end(self, test_metrics: dict, epoch_idx: int) -> None:
        self._report(test_metrics, "test", epoch_idx)

    def _report(self, metrics: dict, phase: str, epoch_idx: int) -> None:
        """One matrix per loader: ``val`` for a single loader, ``val/<name>`` for each named one (``val_<name>`` in
        the file name)."""
        ends = ("/preds", "/conf_matrix")
        found = {k.rpartition("/")[0] for k in metrics if k.startswith(f"{phase}/") and k.endswith(ends)}
        for mode in sorted(found) or [phase]:
            self._report_one(metrics, mode, epoch_idx)

    def _report_one(self, metrics: dict, mode: str, epoch_idx: int) -> None:
        counts = self.counts(metrics, mode)
        if counts is None:
            LOGGER.warning(
                "ConfusionMatrixCallback: no %s/preds and %s/labels (set log_predictions: true) or %s/conf_matrix "
                "among the %s metrics %s.", mode, mode, mode, mode, sorted(metrics),
            )
            return
        if not self.trainer.logger.is_main_process:
            return
        folder = self.trainer.log_dir / "confusion_matrix"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{mode.replace('/', '_')}_epoch_{epoch_idx:04d}.npy", counts, allow_pickle=False)
        self.trainer.logger.log_figure(f"{mode}/confusion_matrix", self.figure(counts), self.trainer.global_step)

    def counts(self, metrics: dict, mode: str) -> np.ndarray | None:
        """(C, C) int64 counts, rows true labels; None when the metrics hold nothing to build them from."""
        if f"{mode}/conf_matrix" in metrics:
            matrix = np.asarray(metrics[f"{mode}/conf_matrix"])
            return matrix.reshape(-1, matrix.shape[-1], matrix.shape[-1]).sum(axis=0).astype(np.int64)
        if f"{mode}/preds" not in metrics or f"{mode}/labels" not in metrics:
            return None
        preds = np.asarray(metrics[f"{mode}/preds"]).reshape(-1).astype(np.int64)
        labels = np.asarray(metrics[f"{mode}/labels"]).reshape(-1).astype(np.int64)
        num_classes = getattr(self.trainer.config, "num_classes", 0)
        num_classes = max(num_classes, int(preds.max(initial=-1)) + 1, int(labels.max(initial=-1)) + 1)
        matrix = np.zeros((num_classes, num_classes), np.int64)
        np.add.at(matrix, (labels, preds), 1)
        return matrix

    def figure(self, counts: np.ndarray):
        """A matplotlib figure (Agg, no pyplot state) of ``counts`` with annotated cells."""
        from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

        cfg = self.config
        values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if cfg.normalize else counts
        fmt = cfg.format or (".2%" if cfg.normalize else "d")
        fig = Figure(figsize=tuple(cfg.figsize), dpi=cfg.dpi)
        ax = fig.add_subplot()
        image = ax.imshow(values, cmap=cfg.cmap, vmin=0)
        fig.colorbar(image, ax=ax)
        threshold = values.max() / 2 if values.size else 0
        for (row, col), value in np.ndenumerate(values):
            colour = "white" if value > threshold else "black"
            ax.text(col, row, format(value, fmt), ha="center", va="center", color=colour, fontsize="small")
        ticks = np.arange(counts.shape[0])
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("Predicted label")
        ax.set_ylabel("True label")
        ax.set_title("Confusion matrix")
        fig.tight_layout()
        return fig
