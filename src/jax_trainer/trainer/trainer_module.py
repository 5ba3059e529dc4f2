"""TrainerModule: the backend-free training loop.

It reads top to bottom as training does: set up optimizer and compiled steps, then for each epoch train, validate
every ``check_val_every_n_epoch`` epochs, and finally test. Everything that touches a model framework goes through
``self.backend`` (picked by ``model_mode`` from the registry), every dispatch through ``self.runner`` (the compiled
steps, ``runner.py``) and every checkpoint through ``self.checkpointer`` (``jax_trainer.checkpoint``).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import jax

from jax_trainer.backends import get_backend
from jax_trainer.backends.base import RUN_ONCE_OPTIONS
from jax_trainer.callbacks.base import CallbackInterface
from jax_trainer.callbacks.value_policies import ValuePolicyInterface, policy_values
from jax_trainer.checkpoint import MODEL, Checkpointer, EpochPosition, Progress
from jax_trainer.checkpoint.rundir import CONFIG_FILE, write_run_files
from jax_trainer.errors import InputError, Interrupted
from jax_trainer.logger import keys
from jax_trainer.logger.logger import Logger
from jax_trainer.logger.progress import EpochBar, ProgressBar
from jax_trainer.optimizer import build_optimizer, current_learning_rate
from jax_trainer.parallel.placement import placement_of
from jax_trainer.parallel.runtime import is_main_process
from jax_trainer.trainer import steps as S
from jax_trainer.trainer.config import TrainerConfig, TrainerInterface
from jax_trainer.trainer.ema import with_ema
from jax_trainer.trainer.epoch_report import EpochMetrics, fetch_epoch, write_epoch
from jax_trainer.trainer.eval_loaders import check_loaders, named_loaders
from jax_trainer.trainer.final_test import check_test_ckpt, run_final_test
from jax_trainer.trainer.interrupts import SignalFlag
from jax_trainer.precision import StepPrecision
from jax_trainer.trainer.predict import predict
from jax_trainer.trainer.rebuild import rebuild_from_run
from jax_trainer.trainer.run_config import python_run_config
from jax_trainer.trainer.runner import StepRunner
from jax_trainer.trainer.runs import epoch_runs, loader_length, resumed_carry
from jax_trainer.trainer.step_log import StepLog
from jax_trainer.trainer.summary import model_summary

HOOK_NAMES = {"val": "validation", "test": "test"}
LOGGER = logging.getLogger("jax_trainer")


class TrainerModule(TrainerInterface):
    """Lightning-like trainer. Subclasses write ``output_loss`` (any backend), or the backend's own hook:
    ``loss_function`` (nnx) / ``loss_function_linen`` (linen)."""

    config: TrainerConfig

    def __init__(self, config: TrainerConfig, model_config, optimizer_config, exmp_input, mesh=None, full_config=None):
        """Build the model through the backend of ``config.model_mode``, the logger, the callbacks and the
        checkpointer. ``exmp_input`` is an example batch (``batch_to_input`` of it initialises the model and is
        saved with the run); ``mesh`` a ``jax.sharding.Mesh`` (default: ``trainer.mesh``, else all devices on a
        ``data`` axis);
        ``full_config`` the resolved config as a dict, written to the run directory."""
        self.config = config
        if config.compilation_cache_dir:  # jax reads it at the process's first compilation: set it before any
            jax.config.update("jax_compilation_cache_dir", str(config.compilation_cache_dir))
        self.model_config, self.optimizer_config, self.full_config = model_config, optimizer_config, full_config
        self.exmp_input = exmp_input
        self.placement = placement_of(config, mesh)
        backend = with_ema(get_backend(config.model_mode), config.ema)  # ema: trainer/ema.py
        self.backend = backend(self, StepPrecision.from_config(config))
        precision, model_input = self.backend.precision, self.batch_to_input(exmp_input)
        with self.placement.context():  # on a mesh, made sharded (Placement.build)
            self._model_state = self.placement.build(
                lambda: precision.cast_model_state(self.backend.init_model(model_config, model_input, config.seed)),
                annotations=self.backend.partition_annotations, compiler_options=RUN_ONCE_OPTIONS)
        jit = (lambda fn, **_: fn) if config.debug else jax.jit
        self.runner = StepRunner(self.backend, jit, config.log_grad_norm, config.detect_nans, self.placement)
        self.global_step, self.current_epoch, self.should_stop = 0, 0, False
        self.logger = Logger(config.logger)
        self.log_dir = self.logger.log_dir
        self.callbacks = [
            cb_config.instantiate(CallbackInterface, trainer=self) for cb_config in config.callbacks.values()
        ]
        self.value_policies = {k: cfg.instantiate(ValuePolicyInterface) for k, cfg in config.value_policies.items()}
        self.checkpointer = Checkpointer(
            self.log_dir, self.backend.name, full_config, self._named_callbacks, self.logger, self._write_run_files
        )
        self.lr_schedule = None
        self._epoch_bar = EpochBar(config.enable_progress_bar)
        self._resume: EpochPosition | None = None  # a restored mid-epoch position, consumed by its train epoch
        self._signals = SignalFlag()  # SIGTERM / SIGINT received while training (interrupts.py)

    # ----------------------------------------------------------------- user hooks
    def batch_to_input(self, batch):
        """Model input of a batch; used for init and inference."""
        return batch.input if hasattr(batch, "input") else batch

    def output_loss(self, outputs, batch):
        """``(loss, metrics)`` from the model's outputs on ``batch``: the one loss hook every backend serves."""
        raise NotImplementedError(
            f"{type(self).__name__} defines no loss: write output_loss(outputs, batch), or the {self.backend.name} "
            "backend's own hook (loss_function for nnx, loss_function_linen for linen)."
        )

    def loss_function(self, model, batch, train: bool = True, **loss_kwargs):
        """nnx hook: ``(loss, metrics)``; the backend set ``model`` to train or eval mode. Default: ``output_loss``
        of ``model_apply``'s outputs (through the backend)."""
        return self.backend.default_loss(model, batch, train=train, **loss_kwargs)

    def loss_function_linen(self, params, state, batch, rng, train: bool = True, **loss_kwargs):
        """linen hook: ``(loss, (mutable_variables, metrics))``. Default: ``output_loss`` of ``model_linen_apply``'s
        outputs (through the backend)."""
        return self.backend.default_loss(params, state, batch, rng, train=train, **loss_kwargs)

    def model_apply(self, model, inputs, train: bool = True):
        """nnx helper: the model's outputs (the backend already set train/eval mode on ``model``)."""
        return model(inputs)

    def model_linen_apply(self, params, state, inputs, rng, train: bool = True):
        """linen helper: apply with the mutable collections (``batch_stats``) and a dropout rng →
        ``(output, mutable_variables)``; implemented by the linen backend."""
        return self.backend.model_linen_apply(params, state, inputs, rng, train)

    def derive_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Host-side hook on fetched metrics, e.g. to finish a ratio from exactly accumulated parts."""
        return metrics

    # ----------------------------------------------------------------- state
    @property
    def state(self):
        """The backend's train state (None before ``init_optimizer``); the runner carries its leaves."""
        return self.runner.state

    @state.setter
    def state(self, value) -> None:
        self.runner.state = value

    @property
    def model_state(self):
        """The model part of the train state (or the initial or loaded model before training)."""
        return self.backend.model_state(self.state) if self.state is not None else self._model_state

    @model_state.setter
    def model_state(self, value) -> None:
        """Start from these model weights (a state of the same structure): the next ``train_model`` builds a fresh
        optimizer around them."""
        self._model_state = self.placement.place(value, self.backend.partition_annotations())
        self.state = None

    def init_optimizer(self, num_epochs: int, steps_per_epoch: int | None) -> None:
        """Build the optax chain (schedule length from epochs × steps) and the train state."""
        total = self.config.max_steps or (num_epochs * steps_per_epoch if steps_per_epoch else None)
        bundle = build_optimizer(self.optimizer_config, total, self.config.accumulate_grad_batches)
        self.lr_schedule = bundle.learning_rate_fn
        with self.placement.context():  # the optimizer state is made where its parameters are
            self.state = self.placement.build(lambda model_state: self.backend.init_train_state(model_state, bundle.tx),
                                              self._model_state, annotations=self.backend.partition_annotations)

    def bind_model(self):
        """A callable ``inputs -> outputs`` in eval mode."""
        return self.backend.bind(self.model_state)

    # ----------------------------------------------------------------- the loop
    def train_model(
        self, train_loader, val_loader=None, test_loader=None, num_epochs=None, ckpt_path=None, test_ckpt=None
    ):
        """Train for ``num_epochs`` (default ``train_epochs``), validating every ``check_val_every_n_epoch``, then
        test the ``test_ckpt`` weights (default ``trainer.test_ckpt``, "best": the best monitored checkpoint, see
        ``final_test.py``); ``ckpt_path`` ("last", "best" or a checkpoint) resumes exactly. Returns ``{epoch: val
        metrics, ..., "test": test metrics}``. SIGTERM or SIGINT stops it at the next step boundary with
        :class:`Interrupted` after checkpointing the exact position (``checkpoint_on_interrupt``)."""
        num_epochs = num_epochs or self.config.train_epochs
        check_loaders("train_model", val_loader=val_loader, test_loader=test_loader)
        test_ckpt = check_test_ckpt(test_ckpt or self.config.test_ckpt, "test_ckpt")
        self.init_optimizer(num_epochs, loader_length(train_loader))
        LOGGER.info("%s", model_summary(self))
        start_epoch = self.restore_checkpoint(ckpt_path) if ckpt_path is not None else 1
        all_metrics: dict = {}
        status = "failed"
        try:
            with self._signals:
                self.logger.log_hparams(self.full_config or self._config_dict())
                self._run_callbacks("on_training_start")
                for epoch_idx in range(start_epoch, num_epochs + 1):
                    if self.should_stop or self._max_steps_reached():  # checked first: a resumed run may be done
                        break
                    self.current_epoch = epoch_idx
                    self.train_epoch(train_loader, epoch_idx)
                    if val_loader is not None and epoch_idx % self.config.check_val_every_n_epoch == 0:
                        all_metrics[epoch_idx] = self.eval_model(val_loader, "val", epoch_idx)
                    self._stop_point()  # the epoch is complete: write the checkpoints callbacks asked for
                self.logger.write_pending()  # the last epoch's report, before the test's bar
                if test_loader is not None:
                    all_metrics["test"] = run_final_test(self, test_loader, test_ckpt)
                self._run_callbacks("on_training_end")
            status = "success"
        except (KeyboardInterrupt, Interrupted):
            status = "interrupted"
            raise
        finally:
            self._finalize(status)
        return all_metrics

    def train_epoch(self, loader, epoch_idx: int) -> EpochMetrics:
        """One train epoch (the rest of it after a mid-epoch resume); returns its metrics, fetched on first read."""
        self._run_callbacks("on_training_epoch_start", epoch_idx)
        resume, self._resume = self._resume, None
        resume = resume if resume is not None and resume.epoch == epoch_idx else None
        start = resume.batch if resume else 0
        first_step = self.global_step - start
        runs = self.placement.prefetch(epoch_runs(loader, epoch_idx, start, self.config.steps_per_dispatch))
        first = next(runs, None)
        if first is None:
            raise InputError(f"The train loader yielded no batches in epoch {epoch_idx}.")
        inputs = policy_values(self.value_policies, epoch_idx)
        lr = current_learning_rate if self.lr_schedule is not None else None
        self.runner.compile_train(first, lr, self.callbacks, inputs)
        carry, concats = self.runner.start_epoch(self.global_step, inputs), []
        if resume:
            carry, concats = self.placement.replicate(resumed_carry(resume, carry)), list(resume.concats)
        bar = self._epoch_bar.start(loader_length(loader), f"Epoch {epoch_idx}")
        check = self._nonfinite_check(epoch_idx)
        step_log = StepLog(self.runner, self.logger, self.derive_metrics, check, self.global_step, bar)
        step_callbacks = [cb for cb in self.callbacks if cb.wants_step_end]
        log_every = self.config.logger.log_steps_every
        epoch_start = step_log.start_time
        for n_steps, batch in itertools.chain([first], runs):
            if self._signals.stop_requested() or self.checkpointer.is_requested():  # all callbacks saw the step
                self._stop_point(EpochPosition.of(epoch_idx, self.global_step - first_step, carry, concats))
            carry, concat = self.runner.train(carry, n_steps, batch)
            self.logger.write_pending(wait=False)  # deferred logs whose values are ready: the device has work now
            if concat:
                concats.append((n_steps, concat))
            self.global_step += n_steps
            if self.global_step // log_every > (self.global_step - n_steps) // log_every:
                carry = step_log.log(carry, self.global_step)
            for callback in step_callbacks:
                callback.on_train_step_end(self.global_step, epoch_idx)
            bar.update(n_steps)
            if self._max_steps_reached():
                break
        self._epoch_bar.close()  # drawn at its final count before anything else writes to the console
        results = self.runner.finish_epoch(carry)
        self._check_nonfinite(carry, epoch_idx)  # with detect_nans: stop here, not at a later write
        epoch_time = time.perf_counter() - epoch_start  # the host's time for the epoch: the device may still run
        accumulators = self.runner.train_steps.accumulators

        def fetch() -> dict:
            epoch = fetch_epoch(accumulators, results, keys.TRAIN, concats, self.derive_metrics)
            return {**epoch, keys.EPOCH_TIME: epoch_time}

        metrics = EpochMetrics(fetch)  # read from the device only by a callback that reads it, or once computed
        write_epoch(self.logger, metrics, keys.TRAIN, epoch_idx, self.global_step, ready=results.is_ready)
        self._run_callbacks("on_training_epoch_end", metrics, epoch_idx)
        return metrics

    def eval_model(self, loader, mode: str, epoch_idx: int, model_state=None) -> dict[str, float]:
        """Evaluate ``model_state`` (default: the trainer's) on ``loader`` (one, or a dict name -> loader:
        ``val/<name>/<metric>``, see ``eval_loaders.py``); ``mode`` is ``"val"`` or ``"test"``. The callbacks get
        every loader's metrics at once. Returns the scalars."""
        hook, metrics = HOOK_NAMES[mode], {}
        self._run_callbacks(f"on_{hook}_epoch_start", epoch_idx)
        for name, one in named_loaders("eval_model(loader=...)", loader).items():
            metrics.update(self._eval_loader(one, mode, name, epoch_idx, model_state))
        self._run_callbacks(f"on_{hook}_epoch_end", metrics, epoch_idx)
        return {k: v for k, v in metrics.items() if isinstance(v, float)}

    def _eval_loader(self, loader, mode: str, name: str | None, epoch_idx: int, model_state=None) -> dict:
        """One loader's metrics (keyed with its ``name``: ``keys.loader_key``), written to its own epoch file."""
        carry, concats = None, []
        title = " ".join(filter(None, [mode.capitalize(), name, str(epoch_idx)]))
        bar = ProgressBar(loader_length(loader), title, self.config.enable_progress_bar)
        for _, batch in self.placement.prefetch((1, batch) for batch in loader):
            if carry is None:
                weights = self.model_state if model_state is None else model_state
                carry = self.runner.start_eval(weights, batch, policy_values(self.value_policies, epoch_idx))
            carry, concat = self.runner.eval(carry, batch)
            self.logger.write_pending(wait=False)
            if concat:
                concats.append((1, concat))
            bar.update(1)
        if carry is None:
            bar.close()
            raise InputError(f"The {mode} loader{f' {name!r}' if name else ''} yielded no batches.")
        self._check_nonfinite(carry, epoch_idx)
        results = self.runner.eval_results(carry)
        metrics = fetch_epoch(self.runner.eval_steps.accumulators, results, mode, concats, self.derive_metrics)
        bar.close()  # after the fetch: the device is done, so the bar's rate is the evaluation's own
        metrics = {keys.loader_key(k, mode, name): v for k, v in metrics.items()}
        write_epoch(self.logger, metrics, mode, epoch_idx, self.global_step, loader=name)
        return metrics

    def test_model(self, test_loader, epoch_idx: int = 0) -> dict[str, float]:
        """Evaluate on the test loader: ``{"test/...": float}``."""
        return self.eval_model(test_loader, "test", epoch_idx)

    # ----------------------------------------------------------------- checkpoints (jax_trainer.checkpoint)
    def restore_checkpoint(self, ckpt_path) -> int:
        """Restore the run state from ``ckpt_path`` ("last", "best" or a path); returns the epoch to continue with."""
        restored = self.checkpointer.restore(ckpt_path, self.backend.state_dict(self.state))
        if restored is None:
            return 1
        self.state = self.backend.load_state_dict(self.state, restored.tree)
        self.global_step, self.current_epoch, self.should_stop = restored.progress
        self._resume = restored.position
        return restored.next_epoch

    def load_model_checkpoint(self, ckpt_path) -> Path:
        """Load a checkpoint's model weights ("last", "best" or a path) to evaluate, infer or fine-tune: the
        optimizer state is not loaded, so a following ``train_model`` starts a fresh optimizer from these weights."""
        model_state = self.model_state
        template = self.backend.model_state_dict(model_state)
        tree, progress, path = self.checkpointer.load_weights(ckpt_path, template)
        self.model_state = self.backend.load_model_state_dict(model_state, tree)
        self.global_step, self.current_epoch = progress.step, progress.epoch
        return path

    @classmethod
    def load_from_checkpoint(cls, path, which: str = "last", log_dir=None, mesh: dict | None = None) -> "TrainerModule":
        """Rebuild a run directory's trainer from its ``config.yaml`` and ``exmp_input.npz`` with a checkpoint's
        weights. ``path``: a checkpoint, or a run directory (its ``which`` checkpoint: "last" or "best"). The
        trainer has no callbacks and no logging tools; its metric files go to ``log_dir`` (default
        ``<run>/eval``) so the run's own files stay untouched. ``mesh`` (as ``trainer.mesh``) restores onto
        another layout than the run's, e.g. ``{"fsdp": -1}``."""
        return rebuild_from_run(cls, path, which, log_dir, mesh)

    def predict(self, loader):
        """The model's outputs for every example of ``loader``, in order (numpy), in eval mode; compiled once (a
        short last batch is padded, its padding dropped). Lightning's ``predict``, Keras' ``predict``."""
        return predict(self, loader)

    # ----------------------------------------------------------------- helpers
    def _stop_point(self, position: EpochPosition | None = None) -> None:
        """Between two steps (``position``) or after a complete epoch (None): write the checkpoints asked for; after
        a signal, checkpoint this position and raise :class:`Interrupted`."""
        progress = Progress(self.global_step, self.current_epoch, self.should_stop)
        self.checkpointer.save_point(progress, self._state_tree, position)
        if self._signals.stop_requested():
            saved = None
            if self.config.checkpoint_on_interrupt:
                saved = self.checkpointer.save_interrupted(progress, self._state_tree, position)
            raise Interrupted(self._signals.signum, self.global_step, saved)

    def _state_tree(self, with_optimizer: bool) -> dict:
        if with_optimizer:
            return self.backend.state_dict(self.state)
        return {MODEL: self.backend.model_state_dict(self.model_state)}

    def _named_callbacks(self) -> dict[str, Any]:
        """Callbacks by their config name; callbacks added in Python by class name and position."""
        names = list(self.config.callbacks)
        extra = self.callbacks[len(names) :]
        names += [f"{type(cb).__name__}#{i}" for i, cb in enumerate(extra, len(names))]
        return dict(zip(names, self.callbacks))

    def _write_run_files(self) -> None:
        """A trainer built in Python (not by ``jax-trainer fit``) gets its config.yaml and exmp_input.npz with its
        first checkpoint, so ``load_from_checkpoint`` can rebuild it from the run directory alone."""
        if not is_main_process() or (Path(self.log_dir) / CONFIG_FILE).is_file():
            return
        write_run_files(self.log_dir, dict(self.full_config or self._config_dict()), self.exmp_input)

    def _config_dict(self) -> dict:
        """The resolved configs as plain dicts, for a trainer built in Python rather than from a config file: its
        class and the modules of the user's classes under ``imports:`` (``run_config.py``)."""
        return python_run_config(self)

    def _nonfinite_check(self, epoch_idx: int):
        return functools.partial(self._check_nonfinite, epoch_idx=epoch_idx) if self.config.detect_nans else None

    def _check_nonfinite(self, carry: S.Carry, epoch_idx: int) -> None:
        S.raise_if_nonfinite(carry, epoch_idx, before_raise=self.logger.flush)  # with detect_nans

    def _max_steps_reached(self) -> bool:
        return self.config.max_steps is not None and self.global_step >= self.config.max_steps

    def _run_callbacks(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def _finalize(self, status: str) -> None:
        """Callbacks' ``finalize``, then every save on disk, then the logs closed, each whatever the others do. After a
        failure (already propagating) their own errors are logged in one line each, not raised over it."""
        self._epoch_bar.close()
        errors = []
        steps = [functools.partial(cb.finalize, status) for cb in self.callbacks]
        steps += [self.checkpointer.close, functools.partial(self.logger.finalize, status)]
        for step in steps:
            try:
                step()
            except Exception as err:  # a failing finalizer must not hide the others or the log flush
                errors.append(err)
        if errors and status == "success":
            raise errors[0]
        for err in errors:
            LOGGER.error("While stopping the %s run: %s: %s", status, type(err).__name__, err)

