"""Built-in task trainers. Each writes its loss once, on model outputs (``output_loss``); every backend serves it."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import optax
from compoconf import register

from jax_trainer.datasets.files import DataError
from jax_trainer.logger.enums import LogMetricMode
from jax_trainer.trainer.config import TrainerConfig
from jax_trainer.trainer.trainer_module import TrainerModule

OutputLossTrainer = TrainerModule
"""The base the task trainers had when only it took ``output_loss``; every TrainerModule takes it now."""


@dataclass
class ImgClassifierTrainerConfig(TrainerConfig):
    """``num_classes`` (for the confusion matrix); ``log_predictions`` gathers predictions and labels per epoch."""

    num_classes: int = 10
    log_predictions: bool = False


@register
class ImgClassifierTrainer(TrainerModule):
    """Cross-entropy on integer labels; accuracy; predictions and labels (CONCAT) for a confusion matrix."""

    config: ImgClassifierTrainerConfig

    def train_model(self, train_loader, val_loader=None, test_loader=None, num_epochs=None, ckpt_path=None):
        """``TrainerModule.train_model``, after refusing labels outside ``[0, num_classes)`` (see ``check_labels``)."""
        self.check_labels({"train": train_loader, "val": val_loader, "test": test_loader})
        return super().train_model(train_loader, val_loader, test_loader, num_epochs, ckpt_path)

    def check_labels(self, loaders: dict) -> None:
        """A DataError for labels below 0 or not below the model's ``num_classes`` (the width of its logits;
        ``trainer.num_classes`` for a model that does not say), read once from loaders that hold their examples in
        memory (``NumpyLoader.arrays``); other iterables are not read. ``trainer.num_classes`` alone only sizes the
        confusion matrix, so original configs that leave it at its default keep training."""
        own = getattr(self.model_config, "num_classes", None)
        bounds = {"model.num_classes": own} if own is not None else {"trainer.num_classes": self.config.num_classes}
        for name, loader in _flat_loaders(loaders):
            labels = getattr(getattr(loader, "arrays", None), "target", None)
            if not isinstance(labels, np.ndarray) or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
                continue
            low, high = int(labels.min()), int(labels.max())
            for field, bound in bounds.items():
                if bound is not None and (low < 0 or high >= bound):
                    raise DataError(
                        f"{name} labels range over [{low}, {high}], but {field} {bound} needs labels in "
                        f"[0, {bound - 1}]; fix the data or {field}"
                    )

    def output_loss(self, outputs, batch):
        labels = batch.target
        loss = optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()
        preds = outputs.argmax(axis=-1)
        metrics = {"acc": (preds == labels).mean()}
        if self.config.log_predictions:
            metrics["preds"] = {"value": preds, "mode": LogMetricMode.CONCAT}
            metrics["labels"] = {"value": labels, "mode": LogMetricMode.CONCAT}
        return loss, metrics


def _flat_loaders(loaders: dict):
    """``(name, loader)`` pairs, a dict of named loaders (``val/<name>``) opened up; None loaders left out."""
    for name, loader in loaders.items():
        if isinstance(loader, dict):
            yield from ((f"{name}/{key}", inner) for key, inner in loader.items() if inner is not None)
        elif loader is not None:
            yield name, loader


@dataclass
class RegressionTrainerConfig(TrainerConfig):
    """``mape_epsilon`` keeps MAPE finite at zero targets."""

    mape_epsilon: float = 1e-8


@register
class RegressionTrainer(TrainerModule):
    """MSE loss; MSE, MAE, MAPE (%) and R2. R2 is finished on the host from exactly accumulated means."""

    config: RegressionTrainerConfig

    def output_loss(self, outputs, batch):
        target = batch.target.astype(jnp.float32)
        preds = outputs.reshape(target.shape)
        err = preds - target
        mse = jnp.mean(err**2)
        metrics = {
            "mse": mse,
            "mae": jnp.mean(jnp.abs(err)),
            "mape": 100.0 * jnp.mean(jnp.abs(err) / jnp.maximum(jnp.abs(target), self.config.mape_epsilon)),
            "_target_mean": jnp.mean(target),
            "_target_sq_mean": jnp.mean(target**2),
        }
        return mse, metrics

    def derive_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        out = {}
        for key, value in metrics.items():
            prefix, _, name = key.rpartition("/")
            if name == "_target_mean":
                variance = metrics[f"{prefix}/_target_sq_mean"] - value**2
                out[f"{prefix}/r2"] = 1.0 - metrics[f"{prefix}/mse"] / max(variance, 1e-12)
            elif not name.startswith("_"):
                out[key] = value
        return out
