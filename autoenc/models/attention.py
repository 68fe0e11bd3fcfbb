# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Variant C: Variant B with CBAM attention at a configurable placement."""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from autoenc.layers.attention import CBAM
from autoenc.models.base import AutoencoderBase, check_positive_int
from autoenc.models.registry import register_model
from autoenc.models.residual import AttentionHook, AttentionSite, build_g_a, build_g_s

Placement = Literal["bottleneck", "every_stage", "every_block"]
PLACEMENTS: tuple[str, ...] = get_args(Placement)

# Which hook site each placement inserts CBAM at.
_PLACEMENT_SITE: dict[str, AttentionSite] = {
    "bottleneck": "bottleneck",
    "every_stage": "stage",
    "every_block": "block",
}


def cbam_hook(placement: str, reduction: int) -> AttentionHook:
    """Hook that inserts one CBAM at every site matching ``placement``."""
    wanted = _PLACEMENT_SITE[placement]

    def hook(channels: int, site: AttentionSite) -> list[nn.Module]:
        return [CBAM(channels, reduction)] if site == wanted else []

    return hook


@register_model
class AttentionAutoencoder(AutoencoderBase):
    """Residual autoencoder with CBAM.

    Placements: ``bottleneck`` = one CBAM on the deepest encoder features and one
    after the decoder's first conv; ``every_stage`` = after each encoder and
    decoder stage; ``every_block`` = after every residual block.
    """

    def __init__(
        self,
        latent_channels: int = 16,
        base_channels: int = 32,
        blocks_per_stage: int = 2,
        placement: Placement = "bottleneck",
        reduction: int = 16,
    ) -> None:
        super().__init__(latent_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("blocks_per_stage", blocks_per_stage)
        check_positive_int("reduction", reduction)
        if placement not in PLACEMENTS:
            valid = ", ".join(PLACEMENTS)
            raise ValueError(
                f"unknown attention placement {placement!r}; valid placements: {valid}"
            )
        self._config.update(
            base_channels=base_channels,
            blocks_per_stage=blocks_per_stage,
            placement=placement,
            reduction=reduction,
        )
        hook = cbam_hook(placement, reduction)
        self.g_a = build_g_a(latent_channels, base_channels, blocks_per_stage, hook)
        self.g_s = build_g_s(latent_channels, base_channels, blocks_per_stage, hook)
        self.init_weights()
