# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Common encode/decode interface, input checks and weight init for all variants."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


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
    g_a: nn.Module
    g_s: nn.Module

    def __init__(self, latent_channels: int) -> None:
        super().__init__()
        self.latent_channels = check_positive_int("latent_channels", latent_channels)
        self._config: dict[str, Any] = {"latent_channels": latent_channels}

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

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Encode then decode; returns the reconstruction and the latent."""
        y = self.encode(x)
        x_hat = self.decode(y)
        return {"x_hat": x_hat, "y": y}

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
