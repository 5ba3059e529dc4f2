"""Model registries, one per backend.

A zoo model is registered twice under the same class name, once per interface, so a single
``model:`` block resolves to the linen or the nnx implementation depending on ``model_mode`` (the config parses
``model:`` against the interface of that backend, ``Backend.model_interface``). Free of flax.
"""

from compoconf import RegistrableConfigInterface, register_interface


@register_interface
class BaseModelLinen(RegistrableConfigInterface):
    """Registry of ``flax.linen`` models; ``config.instantiate(BaseModelLinen)`` returns a Module.

    Call convention: ``module.apply(variables, x, train=bool, rngs={"dropout": key},
    mutable=["batch_stats"])`` with ``__call__(self, x, train: bool = False)``.
    """


@register_interface
class BaseModelNNX(RegistrableConfigInterface):
    """Registry of ``flax.nnx`` models.

    ``config.instantiate(BaseModelNNX, rngs=nnx.Rngs(...), exmp_input=x)`` returns an
    ``nnx.Module`` called as ``model(x)``; train/eval behaviour is switched with
    ``model.train()`` / ``model.eval()``. nnx builds parameters eagerly, so the zoo models need
    ``exmp_input`` (anything with a ``.shape``) to size their first layer.
    """
