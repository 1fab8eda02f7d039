"""Model zoo: one module per family; importing a family module registers its models."""
from fer_search.models import attention_cnn, deeper_cnn, mobilevit, resnet, simple_cnn, vgg, vit  # noqa: F401  (registration)
from fer_search.models.registry import (
    count_parameters,
    create_initialised_model,
    create_model,
    describe_models,
    list_models,
    model_family,
    model_hparams,
    model_normalization,
    register_model,
)

__all__ = [
    "count_parameters",
    "create_initialised_model",
    "create_model",
    "describe_models",
    "list_models",
    "model_family",
    "model_hparams",
    "model_normalization",
    "register_model",
]
