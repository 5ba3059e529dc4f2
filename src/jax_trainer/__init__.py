"""jax_trainer: a Lightning-like trainer for JAX with flax.linen and flax.nnx backends."""

__version__ = "0.1.0"
