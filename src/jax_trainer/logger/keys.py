"""Metric keys: the one place that says how a metric is named, per phase and per epoch.

A loss function returns metrics by plain name (``acc``); inside the compiled steps they are keyed
``<phase prefix>/<name>`` with the prefix ``train`` or ``eval`` (one eval step serves val and test). On the host,
eval keys become ``val/<name>`` or ``test/<name>``; train epoch values are written as ``train/<name>_epoch`` so they
never share a tag with the step series (``train/epoch_time`` exists only per epoch and keeps its name). A monitor
(``ModelCheckpoint.monitor``, ``EarlyStopping.monitor``) may name a train epoch metric either way.

Several named val/test loaders (``val_loader={"clean": a, "noisy": b}``) put the loader's name after the phase:
``val/noisy/acc``, written to ``metrics/val_noisy_epoch_NNNN.json``; a single unnamed loader keeps ``val/acc`` and
``metrics/val_epoch_NNNN.json``.
"""

from __future__ import annotations

import re

TRAIN, EVAL = "train", "eval"
LOSS = "loss"
TRAIN_LOSS = f"{TRAIN}/{LOSS}"
LEARNING_RATE = "optimizer/lr"
GRAD_NORM = "optimizer/grad_global_norm"
STEP_TIME, SAMPLES_PER_SEC, EPOCH_TIME = "train/step_time", "train/samples_per_sec", "train/epoch_time"
EPOCH_SUFFIX = "_epoch"


def step_key(name: str, prefix: str) -> str:
    """A loss-function metric as the compiled step keys it: ``<prefix>/<name>`` unless it names its own group."""
    return name if "/" in name else f"{prefix}/{name}"


def phase_key(key: str, phase: str) -> str:
    """A step key as logged in ``phase`` (``train``, ``val``, ``test``): ``eval/acc`` → ``val/acc``."""
    prefix, _, name = key.partition("/")
    return f"{phase}/{name}" if prefix in (EVAL, TRAIN) else key


def loss_key(phase: str) -> str:
    """``train/loss``, ``val/loss``, ``test/loss``."""
    return f"{phase}/{LOSS}"


def epoch_tag(key: str) -> str:
    """The tag a train epoch value is written under: ``train/loss`` → ``train/loss_epoch``."""
    return key if key == EPOCH_TIME else f"{key}{EPOCH_SUFFIX}"


def is_train_key(key: str) -> bool:
    """Whether ``key`` names a train metric (a monitor that reads the train epoch, not a validation)."""
    return key.startswith(f"{TRAIN}/")


def monitored(key: str, metrics) -> str | None:
    """The key of ``metrics`` a monitor ``key`` reads (``train/loss_epoch`` finds ``train/loss``), None if absent."""
    for candidate in (key, key.removesuffix(EPOCH_SUFFIX)):
        if candidate in metrics:
            return candidate
    return None


def loader_key(key: str, phase: str, loader: str | None) -> str:
    """An eval metric of a named loader: ``val/acc`` of loader ``noisy`` → ``val/noisy/acc``; a key outside the phase
    (a metric naming its own group, ``custom/x``) → ``val/noisy/custom/x``. The unnamed loader (None) keeps
    ``key``."""
    if loader is None:
        return key
    name = key.removeprefix(f"{phase}/")
    return f"{phase}/{loader}/{name}"


def epoch_file_stem(phase: str, loader: str | None) -> str:
    """The name an epoch file starts with: ``val`` (``metrics/val_epoch_0003.json``), or ``val_noisy`` for a named
    loader."""
    return phase if loader is None else f"{phase}_{loader}"


_LOADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
LOADER_NAME_RULE = "letters, digits, '_', '.' or '-', starting with a letter or digit (e.g. 'noisy')"


def is_loader_name(name) -> bool:
    """Whether ``name`` can name a val/test loader: it becomes part of metric keys, tags and file names."""
    return isinstance(name, str) and _LOADER_NAME.match(name) is not None
