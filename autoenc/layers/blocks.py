# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Convolution builders and residual blocks shared by the autoencoder variants.

Padding is computed in one place (`conv`, `deconv`) so every layer keeps the
spatial size exactly at ``H / stride`` (or ``H * stride`` for transposed convs).
"""

from __future__ import annotations

from torch import Tensor, nn


def conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False
) -> nn.Conv2d:
    """Odd-kernel conv with "same" padding, so stride alone sets the output size."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 conv, used for projections and channel changes."""
    return conv(in_channels, out_channels, 1, stride=stride, bias=bias)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 conv with padding 1."""
    return conv(in_channels, out_channels, 3, stride=stride, bias=bias)


def deconv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 2, bias: bool = False
) -> nn.ConvTranspose2d:
    """Odd-kernel transposed conv whose output is exactly ``stride`` times the input size."""
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        output_padding=stride - 1,
        bias=bias,
    )


def bilinear_up_conv(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Bilinear x2 upsampling then a conv; avoids the checkerboard artefacts of strided deconvs."""
    # (B, in, H, W) -> (B, out, 2H, 2W)
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        conv(in_channels, out_channels, kernel_size),
    )


class PreActResidualBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016): norm -> act -> conv3x3, twice.

    No activation follows the addition, so the identity path stays clean. A 1x1
    projection shortcut is used when the channel count or stride changes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(in_channels)
        self.act1 = act_layer()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride)
        self.norm2 = norm_layer(out_channels)
        self.act2 = act_layer()
        self.conv2 = conv3x3(out_channels, out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module = (
            conv1x1(in_channels, out_channels, stride=stride) if needs_projection else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        """Residual branch plus (projected) input, no activation after the sum."""
        # (B, in, H, W) -> (B, out, H/stride, W/stride)
        out = self.conv1(self.act1(self.norm1(x)))
        out = self.conv2(self.act2(self.norm2(out)))
        return out + self.shortcut(x)


class BasicResidualBlock(nn.Module):
    """Post-activation ResNet block: conv-norm-act-conv-norm, add skip, then act.

    With ``stride=2`` it is the strided down block; the skip then becomes a
    strided 1x1 conv + norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride)
        self.norm1 = norm_layer(out_channels)
        self.act1 = act_layer()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = norm_layer(out_channels)
        needs_projection = stride != 1 or in_channels != out_channels
        self.shortcut: nn.Module = (
            nn.Sequential(
                conv1x1(in_channels, out_channels, stride=stride), norm_layer(out_channels)
            )
            if needs_projection
            else nn.Identity()
        )
        self.act2 = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        """Residual branch plus (projected) input, activated after the sum."""
        # (B, in, H, W) -> (B, out, H/stride, W/stride)
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class UpResidualBlock(nn.Module):
    """Post-activation x2 up block: deconv3x3(s2)-norm-act-conv3x3-norm + skip, then act.

    The skip is bilinear x2 + 1x1 conv + norm rather than a 1x1 strided deconv,
    which would only fill every other pixel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        act_layer: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv1 = deconv(in_channels, out_channels, 3, stride=2)
        self.norm1 = norm_layer(out_channels)
        self.act1 = act_layer()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = norm_layer(out_channels)
        self.shortcut = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            conv1x1(in_channels, out_channels),
            norm_layer(out_channels),
        )
        self.act2 = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        """Upsampled residual branch plus upsampled skip, activated after the sum."""
        # (B, in, H, W) -> (B, out, 2H, 2W)
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))
