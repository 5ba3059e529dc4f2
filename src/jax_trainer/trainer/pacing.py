"""Pacing: how far the host may run ahead of the device.

jax dispatches asynchronously, so a loop whose host work per step is shorter than the device's runs ahead until
the runtime's limit on computations in flight blocks every further dispatch: from then on each step waits for a
slot, a thread wake-up per step (costly under a hypervisor, measured 3-4 % of an MLP step on 2 vCPUs). Draining
the device instead (a sync) leaves it idle until the host dispatches again. ``Pacing`` does neither: every
``every`` dispatches it waits for the dispatch ``every`` back, so the device always has work queued, at most
``2 * every`` dispatches are in flight, and the host waits once per ``every`` steps. It waits on a token, a tiny
extra output of each dispatch that is ready when the dispatch's work is: state and accumulators are donated to
the next step, so they cannot be waited on later.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax.numpy as jnp

EVERY = 8


def with_token(step: Callable) -> Callable:
    """A step returning a tuple, ``(carry, out)``, as one returning ``(carry, out, token)``."""

    @functools.wraps(step)  # keeps the name compile logs and profiles show
    def step_with_token(*args):
        return (*step(*args), jnp.zeros((), jnp.bool_))

    return step_with_token


class Pacing:
    """``track(token)`` after each dispatch; waits only on tokens ``every`` dispatches old."""

    def __init__(self, every: int = EVERY):
        self.every, self._count, self._held = every, 0, None

    def track(self, token) -> None:
        self._count += 1
        if self._count % self.every:
            return
        held, self._held = self._held, token
        if held is not None:
            held.block_until_ready()
