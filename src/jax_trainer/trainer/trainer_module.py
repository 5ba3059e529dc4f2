"""TrainerModule: the backend-free training loop.

It reads top to bottom as training does: set up optimizer and compiled steps, then for each epoch
train, validate every ``check_val_every_n_epoch`` epochs, and finally test. Everything that touches
flax.linen or flax.nnx goes through ``self.backend`` (picked by ``model_mode`` from the registry).
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

import compoconf
import jax
import numpy as np
import optax

from jax_trainer.backends import get_backend
from jax_trainer.callbacks.base import CallbackInterface
from jax_trainer.callbacks.step_extras import StepExtras
from jax_trainer.callbacks.value_policies import ValuePolicyInterface, policy_values
from jax_trainer.logger.logger import Logger
from jax_trainer.logger.progress import EpochBar, ProgressBar
from jax_trainer.optimizer import build_optimizer, current_learning_rate
from jax_trainer.trainer import checkpointing
from jax_trainer.trainer import steps as S
from jax_trainer.trainer.config import TrainerConfig, TrainerInterface
from jax_trainer.trainer.devices import DataParallel
from jax_trainer.trainer.epoch_report import EpochMetrics, fetch_epoch, write_epoch
from jax_trainer.trainer.flat import FlatState, carry_leaves, first_arg_leaves
from jax_trainer.trainer.pacing import Pacing, with_token
from jax_trainer.trainer.runs import epoch_runs
from jax_trainer.trainer.step_log import StepLog

HOOK_NAMES = {"val": "validation", "test": "test"}


class TrainerModule(TrainerInterface):
    """Lightning-like trainer. Subclasses provide ``loss_function`` (nnx) and/or ``loss_function_linen``."""

    config: TrainerConfig

    def __init__(self, config: TrainerConfig, model_config, optimizer_config, exmp_input, mesh=None, full_config=None):
        self.config = config
        if config.compilation_cache_dir:  # jax reads it at the process's first compilation: set it before any
            jax.config.update("jax_compilation_cache_dir", str(config.compilation_cache_dir))
        self.model_config = model_config
        self.optimizer_config = optimizer_config
        self.full_config = full_config
        self.exmp_input = exmp_input
        self.data_parallel = DataParallel(mesh)
        self.backend = get_backend(config.model_mode)(self)
        self._model_state = self.backend.init_model(model_config, self.batch_to_input(exmp_input), config.seed)
        self.state = None
        self.global_step, self.current_epoch, self.should_stop = 0, 0, False
        self.logger = Logger(config.logger)
        self.log_dir = self.logger.log_dir
        self.callbacks = [
            cb_config.instantiate(CallbackInterface, trainer=self) for cb_config in config.callbacks.values()
        ]
        self.value_policies = {k: cfg.instantiate(ValuePolicyInterface) for k, cfg in config.value_policies.items()}
        self._compiled: dict[str, Any] = {}
        self._epoch_bar = EpochBar(config.enable_progress_bar)
        self.save_requests: list = []  # checkpoint savers waiting for the next save point (checkpointing.py)
        self.resume_position = None  # a restored mid-epoch position, consumed by the next train epoch
        self._next_train_acc = None  # (global step, epoch, accumulators) made at the previous epoch's end
        self._pacing = Pacing()  # how far the host runs ahead of the device (pacing.py)

    # ----------------------------------------------------------------- user hooks
    def batch_to_input(self, batch):
        """Model input of a batch; used for init and inference."""
        return batch.input if hasattr(batch, "input") else batch

    def model_apply(self, model, inputs, train: bool = True):
        """nnx: the backend already set train/eval mode on ``model``."""
        return model(inputs)

    def model_linen_apply(self, params, state, inputs, rng, train: bool = True):
        """linen: apply with mutable collections (``batch_stats``) and a dropout rng → (output, mutable_variables)."""
        variables = {"params": params, **state.mutable_variables}
        mutable = list(state.mutable_variables) if train and state.mutable_variables else False
        out = state.apply_fn(variables, inputs, train=train, rngs={"dropout": rng}, mutable=mutable)
        return out if mutable else (out, {})

    def loss_function(self, model, batch, train: bool = True):
        raise NotImplementedError(f"{type(self).__name__} defines no loss_function for model_mode 'nnx'.")

    def loss_function_linen(self, params, state, batch, rng, train: bool = True):
        raise NotImplementedError(f"{type(self).__name__} defines no loss_function_linen for model_mode 'linen'.")

    def derive_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Host-side hook on fetched metrics, e.g. to finish a ratio from exactly accumulated parts."""
        return metrics

    # ----------------------------------------------------------------- state
    @property
    def state(self):
        """The backend's train state (None before ``init_optimizer``); the loop carries its leaves (see flat.py)."""
        return self._flat_state.tree

    @state.setter
    def state(self, value) -> None:
        self._flat_state = FlatState(value)

    @property
    def model_state(self):
        return self.backend.model_state(self.state) if self.state is not None else self._model_state

    def init_optimizer(self, num_epochs: int, steps_per_epoch: int | None) -> None:
        """Build the optax chain (schedule length from epochs × steps) and the train state."""
        total = self.config.max_steps or (num_epochs * steps_per_epoch if steps_per_epoch else None)
        if total is not None:
            total = max(1, total // self.config.accumulate_grad_batches)
        bundle = build_optimizer(self.optimizer_config, total)
        tx = bundle.tx
        if self.config.accumulate_grad_batches > 1:
            tx = optax.MultiSteps(tx, every_k_schedule=self.config.accumulate_grad_batches)
        self.lr_schedule = bundle.learning_rate_fn
        self.state = self.data_parallel.replicate(self.backend.init_train_state(self._model_state, tx))

    def bind_model(self):
        """A callable ``inputs -> outputs`` in eval mode."""
        return self.backend.bind(self.model_state)

    # ----------------------------------------------------------------- the loop
    def train_model(self, train_loader, val_loader=None, test_loader=None, num_epochs=None, ckpt_path=None):
        num_epochs = num_epochs or self.config.train_epochs
        self.init_optimizer(num_epochs, _len_or_none(train_loader))
        start_epoch = self.restore_checkpoint(ckpt_path) if ckpt_path is not None else 1
        all_metrics: dict = {}
        status = "failed"
        try:
            self.logger.log_hparams(self.full_config or self._config_dict())
            self._run_callbacks("on_training_start")
            for epoch_idx in range(start_epoch, num_epochs + 1):
                if self.should_stop or self._max_steps_reached():  # checked first: a resumed run may be done
                    break
                self.current_epoch = epoch_idx
                self.train_epoch(train_loader, epoch_idx)
                if val_loader is not None and epoch_idx % self.config.check_val_every_n_epoch == 0:
                    all_metrics[epoch_idx] = self.eval_model(val_loader, "val", epoch_idx)
                checkpointing.save_point(self)  # the epoch is complete: write the checkpoints callbacks asked for
            self.logger.write_pending()  # the last epoch's report, so its loss is on the bar drawn last
            self._epoch_bar.close()
            if test_loader is not None:
                all_metrics["test"] = self.test_model(test_loader, self.current_epoch)
            self._run_callbacks("on_training_end")
            status = "success"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            self._finalize(status)
        return all_metrics

    def train_epoch(self, loader, epoch_idx: int) -> EpochMetrics:
        self._run_callbacks("on_training_epoch_start", epoch_idx)
        progress = checkpointing.EpochProgress(self, epoch_idx)  # a restored mid-epoch position, or batch 0
        runs = epoch_runs(loader, epoch_idx, progress.start_batch, self.config.steps_per_dispatch)
        groups = self.data_parallel.prefetch(runs)
        first = next(groups, None)
        if first is None:
            raise ValueError(f"The train loader yielded no batches in epoch {epoch_idx}.")
        self._build_train_steps(first)
        acc, concats = progress.carry(self._fresh_train_acc(epoch_idx))
        bar = self._epoch_bar.start(_len_or_none(loader), f"Epoch {epoch_idx}")
        step_callbacks = [cb for cb in self.callbacks if cb.wants_step_end]
        log_every = self.config.logger.log_steps_every
        step_log = StepLog(self, epoch_idx, bar)
        epoch_start = step_log.start_time
        for n_steps, batch in itertools.chain([first], groups):
            if self.save_requests:  # a save asked for at the previous step: now every callback has seen it
                checkpointing.save_point(self, progress.position(acc, concats))
            step_fn = self._compiled["train_multi"] if n_steps > 1 else self._compiled["train"]
            (leaves, acc), concat, token = step_fn((self._flat_state.leaves, acc), batch)
            self._flat_state.set_leaves(leaves)
            self._pacing.track(token)
            self.logger.write_pending(wait=False)  # deferred logs whose values are ready: the device has work now
            if concat:
                concats.append((n_steps, concat))
            self.global_step += n_steps
            if self.global_step // log_every > (self.global_step - n_steps) // log_every:
                acc = step_log.log(acc)
            for callback in step_callbacks:
                callback.on_train_step_end(self.global_step, epoch_idx)
            bar.update(n_steps)
            if self._max_steps_reached():
                break
        results, next_acc = self._compiled["train_finish"](acc, policy_values(self.value_policies, epoch_idx + 1))
        self._next_train_acc = (self.global_step, epoch_idx + 1, next_acc)
        self._step_extras.hand_back(acc["extras"])
        self._check_nonfinite(acc, epoch_idx)  # with detect_nans: stop here, not at a later write
        epoch_time = time.perf_counter() - epoch_start  # the host's time for the epoch: the device may still run

        def fetch() -> dict:
            return {**fetch_epoch(self, self._train_acc, results, "train", concats), "train/epoch_time": epoch_time}

        metrics = EpochMetrics(fetch)  # read from the device only by a callback that reads it, or once computed
        write_epoch(self, metrics, "train", epoch_idx, ready=results.is_ready, bar=bar)
        self._run_callbacks("on_training_epoch_end", metrics, epoch_idx)
        return metrics

    def eval_model(self, loader, mode: str, epoch_idx: int) -> dict[str, float]:
        """Evaluate on ``loader``; ``mode`` is ``"val"`` or ``"test"``. Returns the scalar metrics."""
        hook = HOOK_NAMES[mode]
        self._run_callbacks(f"on_{hook}_epoch_start", epoch_idx)
        acc, concats = None, []
        model_leaves, model_treedef = jax.tree.flatten(self.model_state)
        bar = ProgressBar(_len_or_none(loader), f"{mode.capitalize()} {epoch_idx}", self.config.enable_progress_bar)
        for _, batch in self.data_parallel.prefetch((1, batch) for batch in loader):
            if acc is None:
                inputs = policy_values(self.value_policies, epoch_idx)
                self._build_eval_step(batch, inputs, model_treedef)
                acc = self._compiled["eval_init"](0, inputs)
            acc, concat, token = self._compiled["eval"](model_leaves, acc, batch)
            self._pacing.track(token)
            self.logger.write_pending(wait=False)
            if concat:
                concats.append((1, concat))
            bar.update(1)
        bar.close()
        if acc is None:
            raise ValueError(f"The {mode} loader yielded no batches.")
        self._check_nonfinite(acc, epoch_idx)
        metrics = fetch_epoch(self, self._eval_acc, self._compiled["eval_results"](acc), mode, concats)
        write_epoch(self, metrics, mode, epoch_idx)
        self._run_callbacks(f"on_{hook}_epoch_end", metrics, epoch_idx)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    def test_model(self, test_loader, epoch_idx: int = 0) -> dict[str, float]:
        return self.eval_model(test_loader, "test", epoch_idx)

    # ----------------------------------------------------------------- checkpoints (see trainer/checkpointing.py)
    def restore_checkpoint(self, ckpt_path) -> int:
        """Restore the run state from ``ckpt_path`` ("last" or a path); returns the epoch to continue with."""
        return checkpointing.restore_run_state(self, ckpt_path)

    def load_model_checkpoint(self, ckpt_path) -> None:
        """Load a checkpoint's model weights ("last" or a path) to evaluate, infer or fine-tune (no optimizer)."""
        checkpointing.load_model_weights(self, ckpt_path)

    @classmethod
    def load_from_checkpoint(cls, path, log_dir=None) -> "TrainerModule":
        """Rebuild a run directory's trainer from config.yaml and exmp_input.npz, with a checkpoint's weights."""
        return checkpointing.load_trainer(cls, path, log_dir)

    # ----------------------------------------------------------------- helpers
    def _build_train_steps(self, first_group) -> None:
        treedef = self._flat_state.treedef
        if "train" in self._compiled and self._compiled["train_treedef"] in (treedef,):  # `in`: identity first
            return
        n_steps, batch = first_group
        one = jax.tree.map(lambda x: x[0], batch) if n_steps > 1 else batch
        lr = current_learning_rate if self.lr_schedule is not None else None

        def values(st, b, inputs):
            return S.train_values(self.backend, st, b, lr, self.config.log_grad_norm, inputs)

        specs = S.discover_specs(values, self.state, one, policy_values(self.value_policies, self.current_epoch))
        self._train_acc = S.Accumulators(specs, windowed=True, track_nonfinite=self.config.detect_nans)
        self._step_extras = StepExtras(self.callbacks)
        step = S.make_train_step(self.backend, self._train_acc, lr, self.config.log_grad_norm, self._step_extras.update)
        step = carry_leaves(step, self._flat_state)
        self._compiled["train"] = self._jit(with_token(step), donate_argnums=(0,))
        self._compiled["train_multi"] = self._jit(with_token(S.scan_steps(step)), donate_argnums=(0,))
        self._compiled["train_treedef"] = treedef
        # Compiled, each accumulator call is one dispatch instead of one per small op.
        self._compiled["train_init"] = self._jit(self._train_acc.init)
        self._compiled["train_finish"] = self._jit(self._train_acc.finish_epoch)
        self._compiled["take_window"] = self._jit(self._train_acc.take_window)
        self._next_train_acc = None

    def _build_eval_step(self, batch, inputs: dict, treedef) -> None:
        if "eval" in self._compiled and self._compiled["eval_treedef"] == treedef:
            return
        values = functools.partial(S.eval_values, self.backend)
        specs = S.discover_specs(values, self.model_state, batch, inputs)
        self._eval_acc = S.Accumulators(specs, windowed=False, track_nonfinite=self.config.detect_nans)
        eval_step = first_arg_leaves(S.make_eval_step(self.backend, self._eval_acc), treedef)
        self._compiled["eval"] = self._jit(with_token(eval_step), donate_argnums=(1,))
        self._compiled["eval_treedef"] = treedef
        self._compiled["eval_init"] = self._jit(self._eval_acc.init)
        self._compiled["eval_results"] = self._jit(self._eval_acc.epoch_results)

    def _fresh_train_acc(self, epoch_idx: int) -> dict:
        """Empty accumulators for ``epoch_idx``: made by the previous epoch's closing call when it ended where this
        one starts, else by a compiled init. Step extras start from their callbacks' host state."""
        prepared, self._next_train_acc = self._next_train_acc, None
        if prepared is not None and prepared[:2] == (self.global_step, epoch_idx):
            fresh = prepared[2]
        else:
            fresh = self._compiled["train_init"](self.global_step, policy_values(self.value_policies, epoch_idx))
        return {**fresh, "extras": jax.tree.map(np.asarray, self._step_extras.init())}

    def _config_dict(self) -> dict:
        """The resolved configs as plain dicts, for a trainer built in Python rather than from a config file."""
        configs = {"trainer": self.config, "model": self.model_config, "optimizer": self.optimizer_config}
        return {name: compoconf.dump_config(cfg) for name, cfg in configs.items() if cfg is not None}

    def _jit(self, fn, **kwargs):
        return fn if self.config.debug else jax.jit(fn, **kwargs)

    def _check_nonfinite(self, acc: dict, epoch_idx: int) -> None:
        """With ``detect_nans``: raise naming the first metric that became non-finite and its step."""
        if "nonfinite" not in acc:
            return
        found = S.first_nonfinite(acc["nonfinite"])
        if found is not None:
            key, step = found
            self.logger.flush()
            raise FloatingPointError(
                f"detect_nans: metric '{key}' became non-finite at step {step + 1} (epoch {epoch_idx})."
            )

    def _max_steps_reached(self) -> bool:
        return self.config.max_steps is not None and self.global_step >= self.config.max_steps

    def _run_callbacks(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _finalize(self, status: str) -> None:
        self._epoch_bar.close()
        errors = []
        for callback in self.callbacks:
            try:
                callback.finalize(status)
            except Exception as err:  # a failing finalizer must not hide the others or the log flush
                errors.append(err)
        try:
            checkpointing.finish_saves(self)  # whoever asked for saves, they are on disk before the run returns
        finally:
            self.logger.finalize(status)
        if errors and status == "success":
            raise errors[0]


def _len_or_none(loader) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None

