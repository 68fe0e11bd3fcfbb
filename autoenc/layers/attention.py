# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""CBAM attention (Woo et al. 2018): reweights channels, then spatial positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """Scales each channel by a gate computed from its global avg- and max-pooled values.

    Both pooled descriptors go through one shared MLP; the gate is the sigmoid of the sum.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be a positive int, got {reduction!r}")
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with each channel scaled by its gate."""
        # (B, C, H, W) -> (B, C, 1, 1) gate, broadcast back over H, W
        avg = self.mlp(torch.mean(x, dim=(2, 3), keepdim=True))
        mx = self.mlp(torch.amax(x, dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """Scales each position by a gate from a 7x7 conv over [channel-max, channel-mean] maps."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x`` with each position scaled by its gate."""
        # (B, C, H, W) -> (B, 2, H, W) -> (B, 1, H, W) gate
        pooled = torch.cat(
            [torch.amax(x, dim=1, keepdim=True), torch.mean(x, dim=1, keepdim=True)], dim=1
        )
        return x * torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel attention followed by spatial attention; shape preserving."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention()

    def forward(self, x: Tensor) -> Tensor:
        """Apply channel then spatial attention."""
        return self.spatial(self.channel(x))


ATTENTION_LAYERS: dict[str, type[nn.Module]] = {"cbam": CBAM}
