# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""ResNet-Lite: post-activation ResNet encoder with a mirrored residual up-sampling decoder."""

from __future__ import annotations

from torch import nn

from autoenc.layers.blocks import BasicResidualBlock, UpResidualBlock, conv, conv3x3
from autoenc.models.base import AutoencoderBase, check_positive_int
from autoenc.models.registry import register_model


@register_model
class ResNetAutoencoder(AutoencoderBase):
    """Encoder stages: (residual, stride-2 residual) blocks; decoder: (up, residual) blocks."""

    def __init__(self, latent_channels: int = 16, base_channels: int = 32) -> None:
        super().__init__(latent_channels)
        b = check_positive_int("base_channels", base_channels)
        c = latent_channels
        self._config.update(base_channels=base_channels)

        enc_widths = [b, 2 * b, 4 * b, 8 * b]
        encoder: list[nn.Module] = [conv(1, b, 7), nn.BatchNorm2d(b), nn.ReLU()]
        in_ch = b
        for width in enc_widths:
            # (B, in, H, W) -> (B, width, H/2, W/2); widen first, then downsample
            encoder += [
                BasicResidualBlock(in_ch, width),
                BasicResidualBlock(width, width, stride=2),
            ]
            in_ch = width
        # no activation: the latent y is unbounded
        encoder.append(conv3x3(in_ch, c, bias=True))
        # (B, 1, H, W) -> (B, C, H/16, W/16)
        self.g_a = nn.Sequential(*encoder)

        dec_widths = [4 * b, 2 * b, b, b]
        decoder: list[nn.Module] = [conv3x3(c, 8 * b), nn.BatchNorm2d(8 * b), nn.ReLU()]
        in_ch = 8 * b
        for width in dec_widths:
            # (B, in, H, W) -> (B, width, 2H, 2W); mirror of the encoder: upsample, then narrow
            decoder += [UpResidualBlock(in_ch, in_ch), BasicResidualBlock(in_ch, width)]
            in_ch = width
        decoder += [conv(in_ch, 1, 7, bias=True), nn.Sigmoid()]
        # (B, C, H/16, W/16) -> (B, 1, H, W) in [0, 1]
        self.g_s = nn.Sequential(*decoder)
        self.init_weights()
