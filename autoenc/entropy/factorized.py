# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Factorized prior (``EntropyBottleneck``, Ballé et al. 2018): a learned density per channel."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoenc.entropy.base import EntropyModel, fp32


class EntropyBottleneck(EntropyModel):
    """Factorized prior of "Variational image compression with a scale hyperprior".

    Each channel has its own learned CDF, a small monotone MLP (Ballé et al. 2018,
    appendix 6.1). ``y -> Q -> y_hat``; ``likelihoods = c(y_hat + 1/2) - c(y_hat - 1/2)``.

    Training adds U(-1/2, 1/2) noise rather than rounding with a straight-through gradient:
    the density of ``y + noise`` is exactly the prior convolved with the unit box, so the
    likelihoods give an unbiased, differentiable estimate of the rate of ``round(y)``,
    while straight-through rounding trains the density on point masses whose likelihoods
    carry no gradient with respect to their position.

    ``quantiles`` (C, 1, 3) track each channel's lower tail, median and upper tail. Only
    `loss` (the aux loss) trains them, see `aux_parameters`; they set the rounding centre
    and the table support built by `update`.
    """

    quantiles: nn.Parameter
    target: Tensor

    def __init__(
        self,
        channels: int,
        filters: Sequence[int] = (3, 3, 3),
        init_scale: float = 10.0,
        likelihood_bound: float = 1e-9,
        tail_mass: float = 1e-9,
    ) -> None:
        super().__init__(likelihood_bound=likelihood_bound)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not filters or any(f < 1 for f in filters):
            raise ValueError(f"filters must be positive ints, got {filters!r}")
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive, got {init_scale!r}")
        if not 0 < tail_mass < 1:
            raise ValueError(f"tail_mass must be in (0, 1), got {tail_mass!r}")
        self.channels = channels
        self.filters = tuple(filters)
        self.tail_mass = float(tail_mass)

        widths = (1, *self.filters, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            # softplus(init) = 1 / scale / fan_out: the initial CDF spans about init_scale.
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(
                nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init))
            )
            self.biases.append(
                nn.Parameter(torch.empty(channels, widths[i + 1], 1).uniform_(-0.5, 0.5))
            )
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))

        init_quantiles = torch.tensor([-init_scale, 0.0, init_scale])
        self.quantiles = nn.Parameter(init_quantiles.repeat(channels, 1, 1))
        # Logits of tail_mass / 2, 1/2 and 1 - tail_mass / 2 under the learned CDF.
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]), persistent=False)

    def aux_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by `loss` only; give them their own optimiser group."""
        return [self.quantiles]

    @property
    def medians(self) -> Tensor:
        """(C,) rounding centres, detached: the rate term must not move them."""
        return self.quantiles[:, 0, 1].detach()

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        """Logit of the per-channel CDF at ``inputs`` (C, 1, N) -> (C, 1, N)."""
        logits = inputs
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases, strict=True)):
            matrix, bias = (matrix.detach(), bias.detach()) if stop_gradient else (matrix, bias)
            # (C, out, in) @ (C, in, N) -> (C, out, N)
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.factors):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _likelihood(self, values: Tensor) -> Tensor:
        """Mass of the unit bin around ``values`` (C, 1, N), before the likelihood bound."""
        lower = self._logits_cumulative(values - 0.5, stop_gradient=False)
        upper = self._logits_cumulative(values + 0.5, stop_gradient=False)
        # Subtract in the tail where sigmoid is far from 1, so tiny masses keep precision.
        sign = torch.where(lower + upper > 0, -1.0, 1.0).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def loss(self) -> Tensor:
        """Aux loss: move ``quantiles`` to the tail_mass / 2, median and upper quantiles."""
        with fp32(self.quantiles.device):
            logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
            return torch.abs(logits - self.target).sum()

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Quantise ``y`` (B, C, ...) and return ``(y_hat, likelihoods)``, both float32."""
        self._check_channels(y)
        with fp32(y.device):
            y = y.float()
            medians = self.medians.view(1, -1, *([1] * (y.ndim - 2)))
            y_hat = self.quantize(y, "noise" if self.training else "dequantize", medians)
            # (B, C, ...) -> (C, 1, B * prod(...))
            values = y_hat.movedim(1, 0).reshape(self.channels, 1, -1)
            likelihood = self._likelihood_floor(self._likelihood(values))
            # (C, 1, B * prod(...)) -> (B, C, ...)
            likelihoods = likelihood.reshape(y_hat.movedim(1, 0).shape).movedim(0, 1)
        return y_hat, likelihoods

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build the integer tables from the current density; False if kept as they were.

        Call with ``force=True`` after training. Table ``c`` covers ``round(y - median)``
        from ``-ceil(median - lower)`` to ``ceil(upper - median)``; the mass outside goes
        to the escape bin.
        """
        if self.has_tables and not force:
            return False
        with fp32(self.quantiles.device):
            quantiles = self.quantiles.detach().float()
            medians = quantiles[:, 0, 1]
            minima = torch.ceil(medians - quantiles[:, 0, 0]).clamp(min=0).long()
            maxima = torch.ceil(quantiles[:, 0, 2] - medians).clamp(min=0).long()
            support = minima + maxima + 1
            if int(support.max()) >= 1 << 16:
                channel = int(support.argmax())
                raise ValueError(
                    f"channel {channel} spans {int(support[channel])} symbols; "
                    "train the aux loss (quantiles) before update()"
                )
            width = int(support.max()) + 1
            # (C, 1, L): y_hat values of each bin, the last column padding for the escape bin
            samples = torch.arange(width, device=medians.device) + (medians - minima)[:, None]
            pmf = self._likelihood(samples[:, None, :])[:, 0, :]
            columns = torch.arange(width, device=pmf.device)
            pmf = torch.where(columns < support[:, None], pmf, 0.0)
            tail = (1 - pmf.sum(dim=1)).clamp(min=0)
            pmf = torch.where(columns == support[:, None], tail[:, None], pmf)
        self._set_tables(pmf, support + 1, -minima)
        return True

    def compress(self, y: Tensor) -> list[bytes]:
        """Code ``y`` (B, C, ...) as one string per batch item; needs `update` first."""
        self._check_channels(y)
        with fp32(y.device):
            medians = self.medians.view(1, -1, *([1] * (y.ndim - 2)))
            symbols = self.quantize(y.float(), "symbols", medians)
        return self._compress_symbols(symbols, self._channel_indexes(symbols.shape[2:]))

    def decompress(self, strings: Sequence[bytes], size: Sequence[int]) -> Tensor:
        """Invert `compress`: ``size`` is the spatial shape; returns (B, C, *size) float32."""
        indexes = self._channel_indexes(tuple(size))
        symbols = self._decompress_symbols(strings, indexes)
        medians = self.medians.view(1, -1, *([1] * len(size)))
        return self.dequantize(symbols.to(medians.device), medians)

    def _channel_indexes(self, size: Sequence[int]) -> Tensor:
        """(1, C, *size) table index of each latent element: its channel."""
        channels = torch.arange(self.channels, dtype=torch.int32)
        return channels.view(1, -1, *([1] * len(size))).expand(1, self.channels, *size)

    def _check_channels(self, y: Tensor) -> None:
        if y.ndim < 2 or y.shape[1] != self.channels:
            raise ValueError(f"expected (B, {self.channels}, ...), got {tuple(y.shape)}")
