"""Math shared by the linen and nnx zoo models, kept in one place so both stay identical."""

import jax

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "tanh": jax.nn.tanh,
    "elu": jax.nn.elu,
    "leaky_relu": jax.nn.leaky_relu,
}
KERNEL_INIT = jax.nn.initializers.lecun_normal()
BIAS_INIT = jax.nn.initializers.zeros
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def pool_after_block(height: int, width: int) -> bool:
    """CNN blocks halve the spatial size with a 2x2 average pool while it stays above 2."""
    return min(height, width) > 2
