# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Reusable building blocks for the autoencoder variants."""

from __future__ import annotations

from autoenc.layers.attention import ATTENTION_LAYERS, CBAM, ChannelAttention, SpatialAttention
from autoenc.layers.blocks import (
    BasicResidualBlock,
    PreActResidualBlock,
    UpResidualBlock,
    bilinear_up_conv,
    conv,
    conv1x1,
    conv3x3,
    deconv,
)

__all__ = [
    "ATTENTION_LAYERS",
    "CBAM",
    "BasicResidualBlock",
    "ChannelAttention",
    "PreActResidualBlock",
    "SpatialAttention",
    "UpResidualBlock",
    "bilinear_up_conv",
    "conv",
    "conv1x1",
    "conv3x3",
    "deconv",
]
