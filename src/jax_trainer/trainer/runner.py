"""The step runner: the train state as the compiled steps see it, the compiled steps themselves, and pacing.

Every dispatch of the loop goes through a :class:`StepRunner`: it holds the train state as flat leaves
(``flat.py``), compiles the train steps once per state structure and the eval step once per model structure
(:class:`TrainSteps`, :class:`EvalSteps`: named, not a string table), and paces the host against the device
(``pacing.py``). The loop (``trainer_module.py``) decides what to run; the runner runs it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import numpy as np

from jax_trainer.callbacks.step_extras import StepExtras
from jax_trainer.parallel.placement import Placement
from jax_trainer.trainer import steps as S
from jax_trainer.trainer.flat import FlatState, carry_leaves, first_arg_leaves
from jax_trainer.trainer.pacing import Pacing, with_token


class TrainSteps(NamedTuple):
    """The compiled train functions for one train-state structure."""

    treedef: Any
    accumulators: S.Accumulators
    extras: StepExtras
    step: Callable  # ((state leaves, carry), batch) -> ((leaves, carry), concat, token)
    scan: Callable  # the same over a run of stacked batches


class EvalSteps(NamedTuple):
    """The compiled eval functions for one model-state structure (one compile serves val and test)."""

    treedef: Any
    accumulators: S.Accumulators
    step: Callable  # (model leaves, carry, batch) -> (carry, concat, token)


class StepRunner:
    """Runs the compiled steps of one trainer. ``jit`` is ``jax.jit`` (or the identity in debug mode); ``placement``
    the trainer's mesh and layouts (``jax_trainer.parallel``)."""

    def __init__(self, backend, jit: Callable, log_grad_norm: bool, detect_nans: bool, placement: Placement):
        self.backend, self._jit, self._mesh = backend, jit, placement.mesh
        self.log_grad_norm, self.detect_nans = log_grad_norm, detect_nans
        # On a mesh, host-made carry parts go to the devices replicated, as the steps return them: the compiled
        # steps then see one input layout for the whole run (numpy inputs would be another, and a recompile).
        self._placed = placement.replicate
        self.train_steps: TrainSteps | None = None
        self.eval_steps: EvalSteps | None = None
        self._flat = FlatState(None)
        self._pacing = Pacing()
        self._eval_leaves: list = []

    # ----------------------------------------------------------------- state
    @property
    def state(self):
        """The train state (None before the optimizer exists); rebuilt from the leaves only when read."""
        return self._flat.tree

    @state.setter
    def state(self, tree) -> None:
        self._flat = FlatState(tree)

    # ----------------------------------------------------------------- train
    def compile_train(self, first_run: tuple[int, Any], learning_rate, callbacks: list, inputs: dict) -> TrainSteps:
        """The train steps for the current state structure, compiled on first use from the first run of an epoch."""
        treedef = self._flat.treedef
        if self.train_steps is not None and self.train_steps.treedef == treedef:
            return self.train_steps
        n_steps, batch = first_run
        one = jax.tree.map(lambda x: x[0], batch) if n_steps > 1 else batch

        def values(state, b, step_inputs):
            return S.train_values(self.backend, state, b, learning_rate, self.log_grad_norm, step_inputs)

        values, specs = S.trace_values(values, self._jit, self.state, one, inputs)
        accumulators = S.Accumulators(specs, windowed=True, track_nonfinite=self.detect_nans)
        extras = StepExtras(callbacks)
        step = S.make_train_step(values, accumulators, extras.update)
        # On a mesh the new state keeps the layout of the old (the optimizer state its parameter's), so a donated
        # buffer is reused in place whatever the compiler would have chosen.
        layout = [leaf.sharding for leaf in self._flat.leaves] if self._mesh is not None else None
        step = carry_leaves(step, self._flat, layout)
        jit = self._jit
        self.train_steps = TrainSteps(
            treedef=treedef,
            accumulators=accumulators,
            extras=extras,
            step=jit(with_token(step), donate_argnums=(0,)),
            scan=jit(with_token(S.scan_steps(step)), donate_argnums=(0,)),
        )
        return self.train_steps

    def start_epoch(self, global_step: int, inputs: dict) -> S.Carry:
        """The carry an epoch starts with, made on the host (``Accumulators.init``); step extras start from their
        callbacks' host state."""
        steps = self.train_steps
        carry = steps.accumulators.init(global_step, inputs)
        return self._placed(carry._replace(extras=jax.tree.map(np.asarray, steps.extras.init())))

    def train(self, carry: S.Carry, n_steps: int, batch) -> tuple[S.Carry, Any]:
        """Dispatch one step (``n_steps == 1``) or a scanned run of stacked batches; returns the carry and the run's
        CONCAT values (empty when no metric is CONCAT)."""
        steps = self.train_steps
        step = steps.scan if n_steps > 1 else steps.step
        (leaves, carry), concat, token = step((self._flat.leaves, carry), batch)
        self._flat.set_leaves(leaves)
        self._pacing.track(token)
        return carry, concat

    def take_window(self, carry: S.Carry) -> tuple[S.Results, S.Carry]:
        """The log window's results (not fetched) and the carry with a fresh window."""
        window, carry = self.train_steps.accumulators.take_window(carry)
        return window, carry._replace(metrics=self._placed(carry.metrics))

    def finish_epoch(self, carry: S.Carry) -> S.Results:
        """The epoch's results (not fetched); the step extras get their final states."""
        self.train_steps.extras.hand_back(carry.extras)
        return self.train_steps.accumulators.epoch_results(carry)

    # ----------------------------------------------------------------- eval
    def start_eval(self, model_state, first_batch, inputs: dict) -> S.Carry:
        """Compile the eval step for ``model_state``'s structure if needed; the carry of an evaluation."""
        leaves, treedef = jax.tree.flatten(model_state)
        if self.eval_steps is None or self.eval_steps.treedef != treedef:
            values = functools.partial(S.eval_values, self.backend)
            values, specs = S.trace_values(values, self._jit, model_state, first_batch, inputs)
            accumulators = S.Accumulators(specs, windowed=False, track_nonfinite=self.detect_nans)
            step = first_arg_leaves(S.make_eval_step(values, accumulators), treedef)
            self.eval_steps = EvalSteps(
                treedef=treedef,
                accumulators=accumulators,
                step=self._jit(with_token(step), donate_argnums=(1,)),
            )
        self._eval_leaves = leaves
        return self._placed(self.eval_steps.accumulators.init(0, inputs))

    def eval(self, carry: S.Carry, batch) -> tuple[S.Carry, Any]:
        """Dispatch one eval step over the model of the last :meth:`start_eval`."""
        carry, concat, token = self.eval_steps.step(self._eval_leaves, carry, batch)
        self._pacing.track(token)
        return carry, concat

    def eval_results(self, carry: S.Carry) -> S.Results:
        """The evaluation's results (not fetched)."""
        self._eval_leaves = []
        return self.eval_steps.accumulators.epoch_results(carry)
