# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Hyperprior codec: residual transforms with a (mean-)scale hyperprior on the latent.

Ballé et al. 2018 ("scale hyperprior") and Minnen et al. 2018 ("mean-scale"): a side latent
``z = h_a(y)`` is coded with a factorized prior, and ``h_s(z_hat)`` predicts the scale (and
mean) of a Gaussian for every element of ``y``, so the prior adapts to each image region.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoenc.entropy import EntropyBottleneck, EntropyModel, GaussianConditional
from autoenc.layers.blocks import conv, deconv
from autoenc.models.base import AutoencoderBase, DeviceMismatchError, check_positive_int
from autoenc.models.registry import register_model
from autoenc.models.residual import build_g_a, build_g_s


def build_h_a(latent_channels: int, hyper_channels: int) -> nn.Sequential:
    """|y| (or y) -> z: 3x3 conv then two stride-2 5x5 convs, (B, M, h, w) -> (B, N, h/4, w/4)."""
    m, n = latent_channels, hyper_channels
    return nn.Sequential(
        conv(m, n, 3, bias=True),
        nn.LeakyReLU(inplace=True),
        conv(n, n, 5, stride=2, bias=True),
        nn.LeakyReLU(inplace=True),
        conv(n, n, 5, stride=2, bias=True),
    )


def build_h_s(latent_channels: int, hyper_channels: int, outputs: int) -> nn.Sequential:
    """z_hat -> Gaussian parameters, (B, N, h/4, w/4) -> (B, outputs * M, h, w)."""
    m, n = latent_channels, hyper_channels
    return nn.Sequential(
        deconv(n, n, 5, stride=2, bias=True),
        nn.LeakyReLU(inplace=True),
        deconv(n, n, 5, stride=2, bias=True),
        nn.LeakyReLU(inplace=True),
        conv(n, outputs * m, 3, bias=True),
    )


def indexes_checksum(indexes: Tensor) -> int:
    """CRC32 of scale-table indexes, to detect a decoder that computes different ones."""
    data = np.ascontiguousarray(indexes.detach().cpu().numpy(), dtype=np.int32)
    return zlib.crc32(data.tobytes())


@register_model
class HyperpriorAutoencoder(AutoencoderBase):
    """Residual g_a/g_s with a mean-scale (or scale-only) Gaussian hyperprior on y."""

    # y at /16; z at /64 of the input padded to a multiple of 64 (h_a pads y, h_s crops back).
    downsampling_factor = 16

    def __init__(
        self,
        latent_channels: int = 64,
        base_channels: int = 32,
        blocks_per_stage: int = 1,
        hyper_channels: int = 64,
        mean_scale: bool = True,
    ) -> None:
        super().__init__(latent_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("blocks_per_stage", blocks_per_stage)
        check_positive_int("hyper_channels", hyper_channels)
        self._config.update(
            base_channels=base_channels,
            blocks_per_stage=blocks_per_stage,
            hyper_channels=hyper_channels,
            mean_scale=bool(mean_scale),
        )
        self.mean_scale = bool(mean_scale)
        self.g_a = build_g_a(latent_channels, base_channels, blocks_per_stage)
        self.g_s = build_g_s(latent_channels, base_channels, blocks_per_stage)
        self.h_a = build_h_a(latent_channels, hyper_channels)
        self.h_s = build_h_s(latent_channels, hyper_channels, 2 if mean_scale else 1)
        self.entropy_bottleneck = EntropyBottleneck(hyper_channels)  # the prior of z
        self.gaussian_conditional = GaussianConditional()
        self.init_weights(negative_slope=0.01)

    def entropy_models(self) -> Iterator[EntropyModel]:
        """The factorized prior of z and the Gaussian conditional of y."""
        yield self.entropy_bottleneck
        yield self.gaussian_conditional

    def _hyper_analysis(self, y: Tensor) -> Tensor:
        """Side latent z = h_a(y) (of |y| if scale-only); y replicate-padded to a multiple of 4."""
        h, w = y.shape[-2:]
        y = F.pad(y, (0, -w % 4, 0, -h % 4), mode="replicate") if (h % 4 or w % 4) else y
        return self.h_a(y if self.mean_scale else torch.abs(y))

    def _gaussian_params(self, z_hat: Tensor, size: Sequence[int]) -> tuple[Tensor, Tensor | None]:
        # (B, N, h/4, w/4) -> (B, k*M, h, w), cropped to the latent's size.
        params = self.h_s(z_hat)[..., : size[0], : size[1]].float()
        if self.mean_scale:
            scales, means = params.chunk(2, dim=1)  # (B, 2M, h, w) -> 2 x (B, M, h, w)
            return scales, means
        return params, None

    def forward(self, x: Tensor, detach_rate: bool = False) -> dict[str, Any]:
        """As :meth:`AutoencoderBase.forward`, with likelihoods of ``y`` and ``z``."""
        y = self.encode(x)
        y_in = y.detach() if detach_rate else y
        z = self._hyper_analysis(y_in)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        scales, means = self._gaussian_params(z_hat, y.shape[-2:])
        y_hat, y_likelihoods = self.gaussian_conditional(y_in, scales, means)
        if detach_rate and self.training:
            y_hat = y + (y_hat - y).detach()
        x_hat = self.decode(y_hat.to(y.dtype))
        return {"x_hat": x_hat, "y": y, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def compress_latent(self, y: Tensor) -> dict[str, Any]:
        """Code ``z`` then ``y`` given ``h_s(z_hat)``; records a checksum of the scale indexes."""
        z = self._hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:]).to(y.device)
        size = y.shape[-2:]
        with torch.autocast(device_type=y.device.type, enabled=False):  # the decoder's precision
            scales, means = self._gaussian_params(z_hat.to(next(self.h_s.parameters()).dtype), size)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y_strings = self.gaussian_conditional.compress(y.float(), indexes, means)
        return {
            "strings": [y_strings, z_strings],
            "shape": [int(s) for s in size],
            "checksums": [indexes_checksum(indexes[i]) for i in range(len(y_strings))],
        }

    def decompress_latent(
        self,
        strings: Sequence[Sequence[bytes]],
        shape: Sequence[int],
        checksums: Sequence[int] | None = None,
    ) -> Tensor:
        """Inverse of :meth:`compress_latent`.

        Raises:
            DeviceMismatchError: the scale indexes differ from the encoder's (``checksums``).
        """
        y_strings, z_strings = strings
        param = next(self.h_s.parameters())
        z_shape = [-(-int(shape[0]) // 4), -(-int(shape[1]) // 4)]  # ceil: y was padded to x4
        z_hat = self.entropy_bottleneck.decompress(z_strings, z_shape).to(param.device)
        with torch.autocast(device_type=param.device.type, enabled=False):  # as the encoder
            scales, means = self._gaussian_params(z_hat.to(param.dtype), shape)
        indexes = self.gaussian_conditional.build_indexes(scales)
        if checksums is not None:
            for i, want in enumerate(checksums):
                if indexes_checksum(indexes[i]) != int(want):
                    raise DeviceMismatchError(
                        "the entropy parameters computed here differ from the encoder's "
                        f"(item {i}); the file was probably encoded on another kind of device"
                    )
        return self.gaussian_conditional.decompress(y_strings, indexes, means)

    def decompress(
        self, strings: Sequence[Sequence[bytes]], shape: Sequence[int], checksums: Any = None
    ) -> dict[str, Any]:
        """Bytes -> ``{"x_hat"}``."""
        y_hat = self.decompress_latent(strings, shape, checksums)
        param = next(self.g_s.parameters())
        return {"x_hat": self.decode(y_hat.to(device=param.device, dtype=param.dtype))}
