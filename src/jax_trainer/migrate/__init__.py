"""linen -> nnx migration, in three steps (walk-through: examples/migrate_linen_to_nnx/).

1. ``bridge``: run an unchanged linen model under the nnx backend (``LinenBridge`` model config).
2. ``convert``: turn a linen run's checkpoint into an nnx run directory for an nnx port of the model.
3. ``parity``: compare the two models' outputs; ``jax-trainer migrate`` does 2 and 3 (``command``).

Submodules import flax; this package does not, so the command line stays light.
"""
