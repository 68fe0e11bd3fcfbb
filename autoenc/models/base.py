# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Common interface of all variants: transforms, entropy model, coding, input checks, init.

The contract follows CompressAI: ``forward(x)`` returns ``{"x_hat", "y", "likelihoods"}``,
``compress(x)`` returns ``{"strings", "shape"}`` and ``decompress(strings, shape)`` returns
``{"x_hat"}``. Between them sit ``encode``/``decode`` (the transforms ``g_a``/``g_s``) and
``compress_latent``/``decompress_latent`` (entropy coding of ``y``), which the whole-scene codec
calls separately so it can tile the transforms and still code every latent element once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from autoenc.entropy import EntropyBottleneck, EntropyModel, GaussianConditional
from autoenc.tiling import Window


class DeviceMismatchError(ValueError):
    """The decoder computed different entropy-model parameters than the encoder did.

    Float results of the hyper-synthesis can differ between devices (GPU vs CPU); decoding
    with other scale tables would produce garbage, so it is refused instead.
    """


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int (not bool); else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class AutoencoderBase(nn.Module):
    """Base class: subclasses define ``g_a`` (analysis/encoder) and ``g_s`` (synthesis/decoder).

    Subclasses record their constructor arguments in ``self._config`` (JSON
    values only) so a model can be rebuilt with ``create_model(name, **model.config)``,
    and call ``self.init_weights()`` at the end of ``__init__``.
    """

    downsampling_factor: int = 16
    #: Whether ``compress``/``decompress`` (and their ``_latent`` halves) take a ``quality``.
    variable_rate: bool = False
    g_a: nn.Module
    g_s: nn.Module

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.latent_channels = check_positive_int("latent_channels", latent_channels)
        self._config: dict[str, Any] = {"latent_channels": latent_channels}
        # The learned factorized prior of y (of z for the hyperprior, which overrides this).
        self.entropy_bottleneck = EntropyBottleneck(self.latent_channels)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor kwargs that rebuild this model (a copy, safe to mutate)."""
        return dict(self._config)

    def check_input(self, x: Tensor) -> None:
        """Reject inputs the fixed-stride network cannot reconstruct at the same size.

        Raises:
            ValueError: if ``x`` is not (B, 1, H, W) or H, W are not multiples of
                ``downsampling_factor``.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        factor = self.downsampling_factor
        if height % factor or width % factor:
            raise ValueError(
                f"input size {height}x{width} is not a multiple of {factor} "
                "(downsampling_factor); pad or crop it"
            )

    def encode(self, x: Tensor) -> Tensor:
        """Map an image to its latent ``y``."""
        self.check_input(x)
        # (B, 1, H, W) -> (B, C, H/16, W/16)
        return self.g_a(x)

    def decode(self, y: Tensor) -> Tensor:
        """Map a latent ``y`` back to an image ``x_hat`` in [0, 1]."""
        # (B, C, H/16, W/16) -> (B, 1, H, W)
        return self.g_s(y)

    def decode_region(self, y: Tensor, region: Window) -> Tensor:
        """``decode(y)`` cut to ``region`` (px of its output): the part a tiled decoder keeps.

        Models whose synthesis can skip the rest override it, with the same values.
        """
        return self.decode(y)[..., region.y : region.y + region.h, region.x : region.x + region.w]

    def forward(self, x: Tensor, detach_rate: bool = False) -> dict[str, Any]:
        """Encode, quantise (noise in training, rounding in eval), decode.

        Args:
            x: (B, 1, H, W) in [0, 1].
            detach_rate: fit the entropy model on ``y.detach()`` so no rate gradient reaches
                the transforms (variants trained without a rate term).

        Returns:
            ``{"x_hat", "y", "likelihoods": {"y": ...}}``; likelihoods are float32.
        """
        y = self.encode(x)
        y_hat, likelihoods = self.entropy_bottleneck(y.detach() if detach_rate else y)
        if detach_rate and self.training:
            # Same noise, but the transforms get their gradient through y itself.
            y_hat = y + (y_hat - y).detach()
        x_hat = self.decode(y_hat.to(y.dtype))
        return {"x_hat": x_hat, "y": y, "likelihoods": {"y": likelihoods}}

    # ---- entropy coding -------------------------------------------------------------------

    def entropy_models(self) -> Iterator[EntropyModel]:
        """The modules whose tables :meth:`update` builds."""
        yield self.entropy_bottleneck

    def aux_parameters(self) -> list[nn.Parameter]:
        """Parameters trained only by :meth:`aux_loss` (their own optimizer group)."""
        return [
            p
            for m in self.entropy_models()
            if isinstance(m, EntropyBottleneck)
            for p in m.aux_parameters()
        ]

    def entropy_parameters(self) -> list[nn.Parameter]:
        """Density parameters of the entropy models (no weight decay, no clipping)."""
        aux = {id(p) for p in self.aux_parameters()}
        return [p for m in self.entropy_models() for p in m.parameters() if id(p) not in aux]

    def network_parameters(self) -> list[nn.Parameter]:
        """The transforms' parameters: the only ones gradient clipping touches."""
        skip = {id(p) for m in self.entropy_models() for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in skip]

    def aux_loss(self) -> Tensor:
        """Sum of the entropy models' auxiliary (quantile) losses."""
        losses = [m.loss() for m in self.entropy_models() if isinstance(m, EntropyBottleneck)]
        return torch.stack(losses).sum()

    def update(self, force: bool = False) -> bool:
        """Build the integer coding tables from the learned densities (stored as buffers)."""
        models = [
            m
            for m in self.entropy_models()
            if isinstance(m, EntropyBottleneck | GaussianConditional)
        ]
        return any([m.update(force=force) for m in models])

    def compress_latent(self, y: Tensor) -> dict[str, Any]:
        """Entropy-code a latent (B, C, h, w): ``{"strings": [[bytes per item]], "shape"}``."""
        return {
            "strings": [self.entropy_bottleneck.compress(y)],
            "shape": [int(s) for s in y.shape[-2:]],
        }

    def decompress_latent(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int]) -> Tensor:
        """Inverse of :meth:`compress_latent`: the rounded latent ``y_hat`` (float32)."""
        return self.entropy_bottleneck.decompress(strings[0], shape)

    def compress(self, x: Tensor) -> dict[str, Any]:
        """Image (B, 1, H, W) -> ``{"strings", "shape"}`` (real bytes)."""
        return self.compress_latent(self.encode(x))

    def decompress(
        self, strings: Sequence[Sequence[bytes]], shape: Sequence[int]
    ) -> dict[str, Any]:
        """Bytes -> ``{"x_hat"}``; equals ``forward`` in eval mode up to float error."""
        y_hat = self.decompress_latent(strings, shape)
        param = next(self.parameters())
        return {"x_hat": self.decode(y_hat.to(device=param.device, dtype=param.dtype))}

    def init_weights(self, negative_slope: float = 0.0) -> None:
        """Kaiming-normal (fan_out) init for convs and linears, zero biases, identity norms.

        Args:
            negative_slope: slope of the dominant LeakyReLU; 0 gives the ReLU gain.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.kaiming_normal_(
                    module.weight, a=negative_slope, mode="fan_out", nonlinearity="leaky_relu"
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
