# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Pure tile geometry for whole-scene coding, and the receptive-field probe that sizes halos.

A scene padded to a multiple of the downsampling factor ``f`` is cut into cores of ``tile``
pixels. The encoder runs ``g_a`` on each core plus an input-side halo and keeps only the core's
latent, so every latent element is coded exactly once. The decoder runs ``g_s`` on each core's
latent plus a latent-side halo taken from the neighbouring cores and keeps the core's pixels.
Windows are clipped at the padded scene's edges, where whole-image processing would zero-pad
too, and every window starts on a multiple of ``f``, so the strided convolutions line up: with
halos at least as wide as the receptive fields, tiled output equals whole-image output up to
float error (variants with global pooling, such as CBAM, differ slightly, and the hyperprior's
side information is computed per tile; the README gives the measured differences).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: Largest halo the probe returns (px on the input side); global pooling would ask for all.
MAX_HALO_PX = 256


@dataclass(frozen=True)
class Window:
    """A rectangle ``[y, y + h) x [x, x + w)``."""

    y: int
    x: int
    h: int
    w: int


@dataclass(frozen=True)
class TileGrid:
    """Cores, halo windows and latent crops of a ``height x width`` scene."""

    height: int
    width: int
    tile: int
    halo: int  # input side, px (multiple of factor)
    latent_halo: int  # decoder side, latent px
    factor: int = 16

    def __post_init__(self) -> None:
        f = self.factor
        if self.tile < f or self.tile % f:
            raise ValueError(f"tile={self.tile} must be a positive multiple of {f}")
        if self.halo < 0 or self.halo % f:
            raise ValueError(f"halo={self.halo} must be a non-negative multiple of {f}")
        if self.latent_halo < 0:
            raise ValueError(f"latent_halo must be >= 0, got {self.latent_halo}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"scene size {self.height}x{self.width} must be positive")

    @property
    def padded(self) -> tuple[int, int]:
        """Scene size rounded up to a multiple of ``factor``."""
        f = self.factor
        return -(-self.height // f) * f, -(-self.width // f) * f

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of tiles."""
        ph, pw = self.padded
        return -(-ph // self.tile), -(-pw // self.tile)

    def core(self, row: int, col: int) -> Window:
        """The tile's own pixels, in padded-scene coordinates."""
        ph, pw = self.padded
        y, x = row * self.tile, col * self.tile
        return Window(y, x, min(self.tile, ph - y), min(self.tile, pw - x))

    def encode_window(self, row: int, col: int) -> tuple[Window, Window]:
        """(input window with halo, core position inside the window's latent), both clipped."""
        c = self.core(row, col)
        ph, pw = self.padded
        y0, x0 = max(c.y - self.halo, 0), max(c.x - self.halo, 0)
        y1, x1 = min(c.y + c.h + self.halo, ph), min(c.x + c.w + self.halo, pw)
        f = self.factor
        crop = Window((c.y - y0) // f, (c.x - x0) // f, c.h // f, c.w // f)
        return Window(y0, x0, y1 - y0, x1 - x0), crop

    def latent_core(self, row: int, col: int) -> Window:
        """The tile's core in latent coordinates."""
        c, f = self.core(row, col), self.factor
        return Window(c.y // f, c.x // f, c.h // f, c.w // f)

    def decode_window(self, row: int, col: int) -> tuple[Window, Window]:
        """(latent window with halo, core position inside the window's output in px)."""
        lc, f = self.latent_core(row, col), self.factor
        lh, lw = self.padded[0] // f, self.padded[1] // f
        y0, x0 = max(lc.y - self.latent_halo, 0), max(lc.x - self.latent_halo, 0)
        y1 = min(lc.y + lc.h + self.latent_halo, lh)
        x1 = min(lc.x + lc.w + self.latent_halo, lw)
        crop = Window((lc.y - y0) * f, (lc.x - x0) * f, lc.h * f, lc.w * f)
        return Window(y0, x0, y1 - y0, x1 - x0), crop


def _extent(grad: torch.Tensor, centre: int) -> int | None:
    """Largest distance from ``centre`` along either axis of a non-zero gradient."""
    nz = (grad.abs() > 0).nonzero()
    if nz.numel() == 0:
        return None
    return int((nz - centre).abs().max())


def receptive_halo(
    g_a: nn.Module, g_s: nn.Module, latent_channels: int, factor: int = 16
) -> tuple[int, int]:
    """Probe the receptive fields: (input halo in px, latent halo in latent px).

    The gradient of one central latent cell w.r.t. a random input (and of a central output
    block w.r.t. a random latent) is non-zero exactly over the receptive field. Global pooling
    makes it the whole probe; the result is then capped at :data:`MAX_HALO_PX`.
    """
    size = 2 * MAX_HALO_PX + 2 * factor
    anchor = next(iter([*g_a.parameters(), *g_a.buffers(), *g_s.parameters()]), None)
    device = torch.device("cpu") if anchor is None else anchor.device
    gen = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        x = torch.rand(1, 1, size, size, generator=gen).to(device).requires_grad_(True)
        y = g_a(x)
        c = y.shape[-1] // 2
        y[0, :, c, c].sum().backward()
        assert x.grad is not None
        reach = _extent(x.grad[0, 0].float().cpu(), c * factor + factor // 2)
        lat = size // factor
        z = (0.1 * torch.randn(1, latent_channels, lat, lat, generator=gen)).to(device)
        z.requires_grad_(True)
        out = g_s(z)
        o = (lat // 2) * factor
        out[0, 0, o : o + factor, o : o + factor].sum().backward()
        assert z.grad is not None
        lreach = _extent(z.grad[0].abs().sum(0).float().cpu(), lat // 2)
    halo = MAX_HALO_PX if reach is None else min(-(-(reach + 1) // factor) * factor, MAX_HALO_PX)
    cap = MAX_HALO_PX // factor
    latent_halo = cap if lreach is None else min(lreach + 1, cap)
    return halo, latent_halo
