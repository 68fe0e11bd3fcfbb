# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Name -> class registry so configs and checkpoints can refer to variants by string."""

from __future__ import annotations

from typing import Any, TypeVar

from autoenc.models.base import AutoencoderBase

ModelT = TypeVar("ModelT", bound=type[AutoencoderBase])

MODELS: dict[str, type[AutoencoderBase]] = {}


def register_model(cls: ModelT) -> ModelT:
    """Class decorator that registers ``cls`` under ``cls.__name__``.

    Raises:
        ValueError: if a model with the same name is already registered.
    """
    name = cls.__name__
    if name in MODELS:
        raise ValueError(f"model variant {name!r} is already registered")
    MODELS[name] = cls
    return cls


def list_models() -> list[str]:
    """Sorted names of all registered variants."""
    return sorted(MODELS)


def get_model_class(name: str) -> type[AutoencoderBase]:
    """Look up a registered variant by name.

    Raises:
        ValueError: if ``name`` is unknown; the message lists the valid names.
    """
    try:
        return MODELS[name]
    except KeyError:
        valid = ", ".join(list_models())
        raise ValueError(f"unknown model variant {name!r}; valid variants: {valid}") from None


def create_model(name: str, **kwargs: Any) -> AutoencoderBase:
    """Instantiate the registered variant ``name`` with ``kwargs``."""
    return get_model_class(name)(**kwargs)
