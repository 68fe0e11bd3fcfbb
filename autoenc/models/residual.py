# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Variant B: pre-activation residual autoencoder.

The encoder/decoder builders take an ``attention`` hook so Variant C can insert
attention layers at chosen sites without duplicating the network definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

from autoenc.layers.blocks import PreActResidualBlock, bilinear_up_conv, conv, conv3x3
from autoenc.models.base import AutoencoderBase, check_positive_int
from autoenc.models.registry import register_model

AttentionSite = Literal["block", "stage", "bottleneck"]
# Called with (channels, site) at every insertion point; returns the layers to insert there.
AttentionHook = Callable[[int, AttentionSite], list[nn.Module]]


def no_attention(channels: int, site: AttentionSite) -> list[nn.Module]:
    """Default hook: insert nothing."""
    return []


def _stage(
    first: nn.Module, width: int, more_blocks: int, attention: AttentionHook
) -> nn.Sequential:
    """``first`` (changes resolution), ``more_blocks`` residual blocks, and attention.

    Per-block attention follows every residual block, ``first`` included when it is one.
    """
    layers: list[nn.Module] = [first]
    if isinstance(first, PreActResidualBlock):
        layers += attention(width, "block")
    for _ in range(more_blocks):
        layers += [PreActResidualBlock(width, width), *attention(width, "block")]
    layers += attention(width, "stage")
    return nn.Sequential(*layers)


def build_g_a(
    latent_channels: int,
    base_channels: int,
    blocks_per_stage: int,
    attention: AttentionHook = no_attention,
) -> nn.Sequential:
    """Encoder: 7x7 stem, four stride-2 pre-activation stages, then norm-act-conv to the latent."""
    b = base_channels
    layers: list[nn.Module] = [conv(1, b, 7)]
    in_ch = b
    for width in (b, 2 * b, 4 * b, 8 * b):
        # (B, in, H, W) -> (B, width, H/2, W/2)
        first = PreActResidualBlock(in_ch, width, stride=2)  # the stage's first block
        layers.append(_stage(first, width, blocks_per_stage - 1, attention))
        in_ch = width
    layers += attention(in_ch, "bottleneck")
    # no final activation: the latent y is unbounded
    layers += [nn.BatchNorm2d(in_ch), nn.ReLU(), conv3x3(in_ch, latent_channels, bias=True)]
    # (B, 1, H, W) -> (B, C, H/16, W/16)
    return nn.Sequential(*layers)


def build_g_s(
    latent_channels: int,
    base_channels: int,
    blocks_per_stage: int,
    attention: AttentionHook = no_attention,
) -> nn.Sequential:
    """Decoder: conv to 8b, four bilinear-x2 stages, then norm-act-7x7 conv and sigmoid."""
    b = base_channels
    layers: list[nn.Module] = [conv3x3(latent_channels, 8 * b), *attention(8 * b, "bottleneck")]
    in_ch = 8 * b
    for width in (4 * b, 2 * b, b, b):
        # (B, in, H, W) -> (B, width, 2H, 2W)
        first = bilinear_up_conv(in_ch, width, kernel_size=3)  # not a residual block
        layers.append(_stage(first, width, blocks_per_stage, attention))
        in_ch = width
    layers += [nn.BatchNorm2d(in_ch), nn.ReLU(), conv(in_ch, 1, 7, bias=True), nn.Sigmoid()]
    # (B, C, H/16, W/16) -> (B, 1, H, W) in [0, 1]
    return nn.Sequential(*layers)


@register_model
class ResidualAutoencoder(AutoencoderBase):
    """Pre-activation residual encoder and bilinear-upsampling residual decoder."""

    def __init__(
        self, latent_channels: int = 16, base_channels: int = 32, blocks_per_stage: int = 2
    ) -> None:
        super().__init__(latent_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("blocks_per_stage", blocks_per_stage)
        self._config.update(base_channels=base_channels, blocks_per_stage=blocks_per_stage)
        self.g_a = build_g_a(latent_channels, base_channels, blocks_per_stage)
        self.g_s = build_g_s(latent_channels, base_channels, blocks_per_stage)
        self.init_weights()
