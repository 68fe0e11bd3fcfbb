# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Gaussian conditional: the hyperprior's model of ``y`` given predicted scales (and means)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
from torch import Tensor

from autoenc.entropy.base import EntropyModel, fp32, lower_bound

SCALES_MIN = 0.11
SCALES_MAX = 256.0
SCALES_LEVELS = 64


def get_scale_table(
    low: float = SCALES_MIN, high: float = SCALES_MAX, levels: int = SCALES_LEVELS
) -> Tensor:
    """``levels`` log-spaced scales from ``low`` to ``high`` (float32), as in CompressAI."""
    if not 0 < low < high or levels < 2:
        raise ValueError(f"need 0 < low < high and levels >= 2, got {low!r}, {high!r}, {levels!r}")
    return torch.exp(torch.linspace(math.log(low), math.log(high), levels))


def _standardized_cumulative(inputs: Tensor) -> Tensor:
    """Standard normal CDF through ``erfc``, accurate far into the lower tail."""
    return 0.5 * torch.erfc(-inputs * (2**-0.5))


class GaussianConditional(EntropyModel):
    """p(y_hat | sigma, mu) = Phi((y_hat - mu + 1/2) / sigma) - Phi((y_hat - mu - 1/2) / sigma).

    From "Variational image compression with a scale hyperprior" (scales) and "Joint
    autoregressive and hierarchical priors for learned image compression" (means). The
    likelihood uses the predicted sigma; coding snaps sigma up to the next entry of the
    fixed ``scale_table``, one integer table per entry, centred on 0 for
    ``round(y - mu)``. The scale table is a persistent buffer so the index mapping
    travels with the checkpoint like the tables do.
    """

    _resizable_buffers = (*EntropyModel._resizable_buffers, "scale_table")
    scale_table: Tensor

    def __init__(
        self,
        scale_table: Sequence[float] | Tensor | None = None,
        scale_bound: float = SCALES_MIN,
        likelihood_bound: float = 1e-9,
        tail_mass: float = 1e-9,
    ) -> None:
        super().__init__(likelihood_bound=likelihood_bound)
        table = get_scale_table() if scale_table is None else torch.as_tensor(scale_table)
        table = table.detach().float().reshape(-1)
        if table.numel() < 1 or table[0] <= 0 or bool((table[1:] <= table[:-1]).any()):
            raise ValueError(f"scale_table must be positive and increasing, got {table.tolist()}")
        if scale_bound <= 0:
            raise ValueError(f"scale_bound must be positive, got {scale_bound!r}")
        if not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be in (0, 1), got {tail_mass!r}")
        self.scale_bound = float(scale_bound)
        self.tail_mass = float(tail_mass)
        self.register_buffer("scale_table", table)

    def _likelihood(self, y_hat: Tensor, scales: Tensor, means: Tensor | None) -> Tensor:
        """Mass of the unit bin around ``y_hat``, before the likelihood bound."""
        values = y_hat if means is None else y_hat - means
        scales = lower_bound(scales, self.scale_bound)
        # Symmetry: evaluate in the lower tail, where Phi is small and accurate.
        values = torch.abs(values)
        upper = _standardized_cumulative((0.5 - values) / scales)
        lower = _standardized_cumulative((-0.5 - values) / scales)
        return upper - lower

    def forward(
        self, y: Tensor, scales: Tensor, means: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Quantise ``y`` and return ``(y_hat, likelihoods)``, float32, shaped like ``y``.

        Noise in training, rounding around ``means`` (or 0) in eval, as in
        `EntropyBottleneck.forward`.
        """
        with fp32(y.device):
            y, scales = y.float(), scales.float()
            means = None if means is None else means.float()
            y_hat = self.quantize(y, "noise" if self.training else "dequantize", means)
            likelihoods = self._likelihood_floor(self._likelihood(y_hat, scales, means))
        return y_hat, likelihoods

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build one integer table per scale-table entry; False if kept as they were.

        Table ``t`` covers ``-c .. c`` with ``c = ceil(scale_table[t] * z)``, where ``z`` is
        the standard normal quantile of ``1 - tail_mass / 2``; the rest is the escape bin.
        """
        if self.has_tables and not force:
            return False
        multiplier = -statistics.NormalDist().inv_cdf(self.tail_mass / 2)
        # float64: the tables depend on nothing learned, so spend precision on the tails.
        scales = self.scale_table.detach().double().cpu()
        centers = torch.ceil(scales * multiplier).long()
        support = 2 * centers + 1
        width = int(support.max()) + 1
        columns = torch.arange(width)
        # (T, L): |symbol| of each bin, the last column padding for the escape bin
        samples = torch.abs(columns[None, :] - centers[:, None]).double()
        upper = _standardized_cumulative((0.5 - samples) / scales[:, None])
        lower = _standardized_cumulative((-0.5 - samples) / scales[:, None])
        pmf = torch.where(columns < support[:, None], upper - lower, 0.0)
        tail = (1 - pmf.sum(dim=1)).clamp(min=0)
        pmf = torch.where(columns == support[:, None], tail[:, None], pmf)
        self._set_tables(pmf, support + 1, -centers)
        return True

    def build_indexes(self, scales: Tensor) -> Tensor:
        """Index (int32, shaped like ``scales``) of the smallest table scale >= each scale.

        Rounding up costs a little rate but never makes a symbol improbable.
        """
        with fp32(scales.device):
            scales = scales.detach().float().clamp(min=self.scale_bound)
            boundaries = self.scale_table[:-1].to(scales.device)
            return torch.bucketize(scales, boundaries).to(torch.int32)

    def compress(self, y: Tensor, indexes: Tensor, means: Tensor | None = None) -> list[bytes]:
        """Code ``y`` (B, ...) with tables ``indexes`` (from `build_indexes`), per batch item."""
        if indexes.shape != y.shape:
            raise ValueError(f"indexes shape {tuple(indexes.shape)} != y shape {tuple(y.shape)}")
        with fp32(y.device):
            means = None if means is None else means.float()
            symbols = self.quantize(y.float(), "symbols", means)
        return self._compress_symbols(symbols, indexes)

    def decompress(
        self, strings: Sequence[bytes], indexes: Tensor, means: Tensor | None = None
    ) -> Tensor:
        """Invert `compress`; returns float32 ``y_hat`` shaped like ``indexes``."""
        if indexes.shape[0] != len(strings):
            raise ValueError(f"got {len(strings)} strings for indexes of shape {indexes.shape}")
        symbols = self._decompress_symbols(strings, indexes)
        return self.dequantize(symbols, None if means is None else means.float())
