# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Name -> class registry, and a network's identity: how configs and checkpoints name variants.

A network is identified by :func:`model_spec` (``{"class_path", "init_args"}``), the mapping
training checkpoints, safetensors exports and ``.aec`` headers store, and rebuilt from it by
:func:`build_model`. Both need torch only: decoding a file never loads Lightning.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
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


def model_spec(model: AutoencoderBase) -> dict[str, Any]:
    """JSON-serialisable identity of a network: import path and constructor arguments."""
    cls = type(model)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(model.config)}


def build_model(spec: Mapping[str, Any]) -> AutoencoderBase:
    """Rebuild a network from :func:`model_spec` output (or a YAML ``class_path`` mapping).

    Raises:
        ValueError: ``class_path`` names no autoenc model (a bare name: no registered variant).
    """
    class_path = str(spec.get("class_path", ""))
    module_name, _, name = class_path.rpartition(".")
    if module_name:
        cls = getattr(importlib.import_module(module_name), name, None)
        if not (isinstance(cls, type) and issubclass(cls, AutoencoderBase)):
            raise ValueError(f"model class_path {class_path!r} is not an autoenc model")
    else:
        cls = get_model_class(name)  # raises, listing the registered variants
    return cls(**dict(spec.get("init_args") or {}))
