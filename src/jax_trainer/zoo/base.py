"""Model registries, one per backend.

A zoo model is registered twice under the same class name, once per interface, so a single
``model:`` block resolves to the linen or the nnx implementation depending on ``model_mode`` (the config parses
``model:`` against the interface of that backend, ``Backend.model_interface``). Free of flax.
"""

from compoconf import RegistrableConfigInterface, register_interface

from jax_trainer.registration import claim_config


@register_interface
class BaseModelLinen(RegistrableConfigInterface):
    """Registry of ``flax.linen`` models; ``config.instantiate(BaseModelLinen)`` returns a Module.

    Call convention: ``module.apply(variables, x, train=bool, rngs={"dropout": key},
    mutable=["batch_stats"])`` with ``__call__(self, x, train: bool = False)``.
    """

    def __init_subclass__(cls, **kwargs):
        """A subclass's config class is its own (``jax_trainer.registration``): see README, "Write a model"."""
        super().__init_subclass__(**kwargs)
        claim_config(cls, MODEL_INTERFACES)


@register_interface
class BaseModelNNX(RegistrableConfigInterface):
    """Registry of ``flax.nnx`` models.

    ``config.instantiate(BaseModelNNX, rngs=nnx.Rngs(...), exmp_input=x)`` returns an
    ``nnx.Module`` called as ``model(x)``; train/eval behaviour is switched with
    ``model.train()`` / ``model.eval()``. nnx builds parameters eagerly, so the zoo models need
    ``exmp_input`` (anything with a ``.shape``) to size their first layer.
    """

    def __init_subclass__(cls, **kwargs):
        """A subclass's config class is its own (``jax_trainer.registration``): see README, "Write a model"."""
        super().__init_subclass__(**kwargs)
        claim_config(cls, MODEL_INTERFACES)


MODEL_INTERFACES = (BaseModelLinen, BaseModelNNX)
"""The model registries: a config class registered for a model in one may not name a differently named model in
another (``registration.claim_config``)."""
