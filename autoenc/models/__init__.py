# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Autoencoder variants; importing this package registers all of them."""

from __future__ import annotations

from autoenc.models.attention import AttentionAutoencoder
from autoenc.models.base import AutoencoderBase, DeviceMismatchError
from autoenc.models.hyperprior import HyperpriorAutoencoder
from autoenc.models.plain import PlainAutoencoder
from autoenc.models.registry import (
    MODELS,
    build_model,
    create_model,
    get_model_class,
    list_models,
    model_spec,
    register_model,
)
from autoenc.models.residual import ResidualAutoencoder
from autoenc.models.resnet import ResNetAutoencoder
from autoenc.models.wavelet import WaveletCodec

__all__ = [
    "MODELS",
    "AttentionAutoencoder",
    "AutoencoderBase",
    "DeviceMismatchError",
    "HyperpriorAutoencoder",
    "PlainAutoencoder",
    "ResNetAutoencoder",
    "ResidualAutoencoder",
    "WaveletCodec",
    "build_model",
    "create_model",
    "get_model_class",
    "list_models",
    "model_spec",
    "register_model",
]
