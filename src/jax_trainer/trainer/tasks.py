"""Built-in task trainers. Each writes its loss once, on model outputs (``output_loss``); every backend serves it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

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

    def train_model(
        self, train_loader, val_loader=None, test_loader=None, num_epochs=None, ckpt_path=None, test_ckpt=None
    ):
        """``TrainerModule.train_model``, after refusing labels outside ``[0, num_classes)`` (see ``check_labels``)."""
        self.check_labels({"train": train_loader, "val": val_loader, "test": test_loader})
        return super().train_model(train_loader, val_loader, test_loader, num_epochs, ckpt_path, test_ckpt)

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
    """Metrics in the target's own units: ``target_mean``/``target_std`` are what the served targets were
    standardised with (``(y - mean) / std``; null: from the dataset's ``target_scale()`` when run from a config, else
    as served). MAPE leaves out targets with ``|y| <= mape_epsilon`` (zero targets have no percentage error)."""

    target_mean: Optional[float] = None
    target_std: Optional[float] = None
    mape_epsilon: float = 1e-8

    def __post_init__(self):
        super().__post_init__()
        if self.target_std is not None and not self.target_std > 0:
            raise ValueError(f"trainer.target_std must be > 0 or null, got {self.target_std}.")


def with_target_units(trainer_config, scale: tuple[float, float] | None):
    """``trainer_config`` with a dataset's target ``scale`` (``DatasetInterface.target_scale``) filled in where a
    regression trainer's ``target_mean``/``target_std`` are unset; any other config unchanged."""
    if scale is None or not isinstance(trainer_config, RegressionTrainerConfig):
        return trainer_config
    mean = scale[0] if trainer_config.target_mean is None else trainer_config.target_mean
    std = scale[1] if trainer_config.target_std is None else trainer_config.target_std
    return dataclasses.replace(trainer_config, target_mean=mean, target_std=std)


@register
class RegressionTrainer(TrainerModule):
    """MSE loss on the targets as served (standardised, well conditioned); MSE, MAE, MAPE (%) and R2 in the
    target's own units (see ``RegressionTrainerConfig``). R2 is finished on the host from exactly accumulated means."""

    config: RegressionTrainerConfig

    def output_loss(self, outputs, batch):
        target = batch.target.astype(jnp.float32)
        preds = outputs.reshape(target.shape)
        loss = jnp.mean((preds - target) ** 2)
        mean, std = self.config.target_mean or 0.0, self.config.target_std or 1.0
        err, units = (preds - target) * std, target * std + mean  # errors and targets in the target's units
        # a zero target comes back from the standardised one with float32 rounding: allow for that too
        counted = jnp.abs(units) > self.config.mape_epsilon + 1e-6 * (abs(mean) + std)
        n_counted = jnp.sum(counted)
        ratios = jnp.where(counted, jnp.abs(err) / jnp.where(counted, jnp.abs(units), 1.0), 0.0)
        metrics = {
            "mse": jnp.mean(err**2),
            "mae": jnp.mean(jnp.abs(err)),
            "mape": {"value": 100.0 * jnp.sum(ratios) / jnp.maximum(n_counted, 1), "count": n_counted},
            "_target_mean": jnp.mean(units),
            "_target_sq_mean": jnp.mean(units**2),
        }
        return loss, metrics

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
