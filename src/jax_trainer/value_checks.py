"""Range checks that config ``__post_init__`` methods share; each raises a ValueError that starts with the field's
name, which ``config_errors.check`` turns into a ConfigError at that field's dotted path."""

from __future__ import annotations

import math

SEED_LIMIT = 2**63  # jax.random.PRNGKey takes a signed 64-bit seed; numpy's generators refuse negative ones


def check_rate(name: str, value: float | None) -> None:
    """A learning rate (or a schedule's value): finite and >= 0; None (not set) passes."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite learning rate >= 0, got {value}")


def check_positive(name: str, value: float) -> None:
    """A bound such as a clipping norm: finite and > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value}")


def check_seed(name: str, value: int) -> None:
    """A random seed: 0 <= seed < 2**63, the range jax.random.PRNGKey and numpy's default_rng both accept."""
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"{name} must satisfy 0 <= seed < 2**63 (jax.random.PRNGKey takes a signed 64-bit seed, numpy's "
            f"generators no negative one), got {value}"
        )
