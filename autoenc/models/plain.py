# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Variant A: plain strided-conv autoencoder, the non-residual baseline."""

from __future__ import annotations

from torch import nn

from autoenc.layers.blocks import conv, deconv
from autoenc.models.base import AutoencoderBase, check_positive_int
from autoenc.models.registry import register_model

LEAKY_SLOPE = 0.2
KERNEL_SIZE = 5


def _down(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 5x5 conv + BN + LeakyReLU; no conv bias since BN adds one."""
    # (B, in, H, W) -> (B, out, H/2, W/2)
    return nn.Sequential(
        conv(in_channels, out_channels, KERNEL_SIZE, stride=2),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(LEAKY_SLOPE),
    )


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 5x5 transposed conv + BN + ReLU."""
    # (B, in, H, W) -> (B, out, 2H, 2W)
    return nn.Sequential(
        deconv(in_channels, out_channels, KERNEL_SIZE, stride=2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


@register_model
class PlainAutoencoder(AutoencoderBase):
    """Four stride-2 convs down, four stride-2 deconvs up; unbounded latent, sigmoid output."""

    def __init__(self, latent_channels: int = 16, base_channels: int = 64) -> None:
        super().__init__(latent_channels)
        b = check_positive_int("base_channels", base_channels)
        c = latent_channels
        self._config.update(base_channels=base_channels)
        # (B, 1, H, W) -> (B, C, H/16, W/16); last conv has no norm/act so y is unbounded
        self.g_a = nn.Sequential(
            _down(1, b),
            _down(b, 2 * b),
            _down(2 * b, 4 * b),
            conv(4 * b, c, KERNEL_SIZE, stride=2, bias=True),
        )
        # (B, C, H/16, W/16) -> (B, 1, H, W) in [0, 1]
        self.g_s = nn.Sequential(
            _up(c, 4 * b),
            _up(4 * b, 2 * b),
            _up(2 * b, b),
            deconv(b, 1, KERNEL_SIZE, stride=2, bias=True),
            nn.Sigmoid(),
        )
        self.init_weights()
