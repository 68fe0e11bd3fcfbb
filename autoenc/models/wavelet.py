# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""A wavelet codec with a learned, parallel-decodable context model (experimental).

The transform is JPEG 2000's CDF 9/7 (:mod:`autoenc.layers.wavelet`, fixed, near-orthonormal),
the quantiser a uniform step ``delta`` shared by every subband (one model for every rate: the
step *is* the quality), and the entropy model learned: every coefficient is coded with a
zero-mean Gaussian whose scale a small CNN predicts from what the decoder already has —

* the LL band: checkerboard anchors with one learned scale, then the other half from the
  decoded anchors;
* each detail level, coarse to fine: the low-pass image at that level's resolution (decoded
  from all coarser bands) and the magnitudes of the coarser level's three bands (the parents),
  then, for the second checkerboard half, the decoded first half of all three bands
  (He et al. 2021's checkerboard, over subbands as in iWave's context modelling).

Because the transform is fixed, the distortion does not depend on any parameter: training is
maximum likelihood of the actual rounded symbols at random steps (exact, no noise proxy), which
converges in minutes on a CPU, and at step 0 the codec is already a wavelet coder.

The decoder reconstructs every coefficient at its conditional mean under the predicted
Gaussian, not at the bin centre (:func:`conditional_mean`): the same scales that code the
symbols tell how far inside its bin a coefficient probably lies. Measured on the compare test
split after 400 training steps: +0.2 to +0.5 dB at equal rate, at no cost in bits.

Invariants:
    * ``x_hat = idwt2(E[y | round(y / delta), sigma] * delta)``: what :meth:`forward` returns
      in eval mode is what :meth:`decompress` returns;
    * the contexts of a symbol use only symbols coded before it (coarser bands, then the
      anchors of its own band).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoenc.entropy import GaussianConditional
from autoenc.layers.wavelet import Subbands, dwt2, idwt2


def checkerboard(h: int, w: int, device: torch.device) -> Tensor:
    """(1, 1, h, w) float mask, 1 on the anchors ((i + j) even)."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return ((i + j) % 2 == 0).float()[None, None]


def _net(cin: int, cout: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(width, width, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(width, cout, 3, padding=1),
    )


class WaveletContextCodec(nn.Module):
    """CDF 9/7 + uniform step + checkerboard/parent context model of Gaussian scales."""

    def __init__(
        self,
        levels: int = 5,
        width: int = 32,
        step_range: tuple[float, float] = (0.02, 4.0),
    ) -> None:
        super().__init__()
        self.levels = levels
        self.downsampling_factor = 2**levels
        self.step_range = (float(step_range[0]), float(step_range[1]))
        # LL: anchors get one learned scale per log-step bucket (a linear function of log step)
        self.ll_anchor = nn.Parameter(torch.tensor([math.log(8.0), 0.0]))
        self.ll_rest = _net(2, 1, width)  # masked anchors, log step
        # detail level k (0 = coarsest): inputs low-pass image, 3 parent magnitudes, log step
        self.anchor = nn.ModuleList(_net(5, 3, width) for _ in range(levels))
        self.rest = nn.ModuleList(_net(8, 3, width) for _ in range(levels))
        self.gaussian_conditional = GaussianConditional()

    # ---- shared context computation -------------------------------------------------------

    def _scales(self, q: Subbands, step: Tensor) -> Subbands:
        """Gaussian scale (in step units) of every symbol of ``q``; contexts from ``q`` itself.

        Valid because each scale depends only on symbols decoded before it.
        """
        b = q.ll.shape[0]
        logs = torch.log(step).view(b, 1, 1, 1)
        mask = checkerboard(q.ll.shape[-2], q.ll.shape[-1], q.ll.device)
        ll_a = torch.exp(self.ll_anchor[0] + self.ll_anchor[1] * logs) / step.view(b, 1, 1, 1)
        ll_r = self.ll_rest(torch.cat([q.ll * mask * step.view(b, 1, 1, 1) / 32.0,
                                       logs.expand_as(q.ll)], 1))  # fmt: skip
        ll_scale = torch.where(mask.bool(), ll_a.expand_as(q.ll), self._to_q(ll_r, step))
        low = q.ll * step.view(b, 1, 1, 1)  # dequantised low-pass image at the coarsest level
        parents = torch.zeros_like(low).expand(-1, 3, -1, -1)
        details = []
        for k, (hl, lh, hh) in enumerate(q.details):
            s = step.view(b, 1, 1, 1)
            gain = 2.0 ** (self.levels - k)
            feat = torch.cat([low / gain, parents, logs.expand_as(low)], 1)
            a = self._to_q(self.anchor[k](feat), step)
            mask = checkerboard(hl.shape[-2], hl.shape[-1], hl.device)
            bands = torch.cat([hl, lh, hh], 1) * s
            r = self._to_q(self.rest[k](torch.cat([feat, bands * mask], 1)), step)
            sc = torch.where(mask.bool(), a, r)
            details.append((sc[:, 0:1], sc[:, 1:2], sc[:, 2:3]))
            # next level's context: low-pass image one level finer, parents upsampled
            low = idwt2(Subbands(low, ((hl * s, lh * s, hh * s),)))
            parents = F.interpolate(bands.abs(), scale_factor=2.0, mode="nearest")
        return Subbands(ll_scale, tuple(details))

    @staticmethod
    def _to_q(log_scale_abs: Tensor, step: Tensor) -> Tensor:
        """exp(net output) is a scale in coefficient units; the coder wants step units."""
        return torch.exp(log_scale_abs.clamp(-12.0, 12.0)) / step.view(-1, 1, 1, 1)

    @staticmethod
    def _reconstruct(q: Subbands, scales: Subbands, step: Tensor) -> Tensor:
        """Image from symbols: conditional-mean dequantisation, inverse wavelet, +0.5."""
        s = step.view(-1, 1, 1, 1)
        bands = [
            conditional_mean(a, b.detach()) * s for a, b in zip(_all(q), _all(scales), strict=True)
        ]
        return idwt2(_rebuild(bands, len(q.details))) + 0.5

    def _quantise(self, x: Tensor, step: Tensor) -> Subbands:
        bands = dwt2(x - 0.5, self.levels)
        return bands.map(lambda t: torch.round(t / step.view(-1, 1, 1, 1)))

    def sample_step(self, batch: int, device: torch.device) -> Tensor:
        """Log-uniform random steps in ``step_range``, one per item (training)."""
        lo, hi = (math.log(v) for v in self.step_range)
        return torch.exp(lo + (hi - lo) * torch.rand(batch, device=device))

    def forward(self, x: Tensor, step: Tensor | None = None) -> dict[str, Any]:
        """``{"x_hat", "likelihoods"}`` at ``step`` (random per item in training, else required)."""
        if step is None:
            step = self.sample_step(x.shape[0], x.device)
        step = step.to(x.device, torch.float32)
        with torch.no_grad():
            q = self._quantise(x.float(), step)
        scales = self._scales(q, step)
        gc = self.gaussian_conditional
        lik = [
            gc._likelihood_floor(gc._likelihood(a, b, None))
            for a, b in zip(_all(q), _all(scales), strict=True)
        ]
        x_hat = self._reconstruct(q, scales, step)
        flat = torch.cat([t.flatten(1) for t in lik], 1)
        return {"x_hat": x_hat, "likelihoods": {"y": flat}}

    # ---- coding -----------------------------------------------------------------------------

    def _groups(self, like: Subbands) -> list[tuple[int, Tensor]]:
        """Coding order: (band index in :func:`_all`, anchor mask) per group, masks (h, w) bool.

        LL anchors, LL rest, then per level (coarse to fine) the anchors of its three bands,
        then the rest of them.
        """
        bands = _all(like)
        order: list[tuple[int, Tensor]] = []
        for first, count in [(0, 1)] + [(1 + 3 * k, 3) for k in range(like.levels)]:
            h, w = bands[first].shape[-2:]
            anchors = checkerboard(h, w, bands[first].device)[0, 0].bool()
            order += [(first + j, anchors) for j in range(count)]
            order += [(first + j, ~anchors) for j in range(count)]
        return order

    def compress(self, x: Tensor, step: float) -> dict[str, Any]:
        """``{"strings": [[bytes per item] per group], "shape", "step"}`` (see :meth:`_groups`)."""
        s = torch.full((x.shape[0],), float(step), device=x.device)
        q = self._quantise(x.float(), s)
        scales = _all(self._scales(q, s))
        bands = _all(q)
        gc = self.gaussian_conditional
        strings = []
        for band, mask in self._groups(q):
            idx = gc.build_indexes(scales[band][:, 0][:, mask])
            strings.append(gc.compress(bands[band][:, 0][:, mask], idx))
        return {"strings": strings, "shape": [int(v) for v in x.shape[-2:]], "step": float(step)}

    @torch.no_grad()
    def decompress(
        self, strings: Sequence[Sequence[bytes]], shape: Sequence[int], step: float
    ) -> dict[str, Tensor]:
        """Decode group by group, each with scales from the groups decoded before it."""
        device = self.ll_anchor.device
        batch = len(strings[0])
        zero = torch.zeros(batch, 1, int(shape[0]), int(shape[1]), device=device)
        q = dwt2(zero, self.levels)  # all-zero subbands of the right shapes
        bands = _all(q)
        s = torch.full((batch,), float(step), device=device)
        gc = self.gaussian_conditional
        for group, (band, mask) in zip(strings, self._groups(q), strict=True):
            scales = _all(self._scales(_rebuild(bands, self.levels), s))
            idx = gc.build_indexes(scales[band][:, 0][:, mask])
            values = gc.decompress(group, idx).to(device)
            bands[band][:, 0][:, mask] = values
        q = _rebuild(bands, self.levels)
        return {"x_hat": self._reconstruct(q, self._scales(q, s), s)}


def _rebuild(bands: list[Tensor], levels: int) -> Subbands:
    """Inverse of :func:`_all`."""
    details = tuple((bands[1 + 3 * k], bands[2 + 3 * k], bands[3 + 3 * k]) for k in range(levels))
    return Subbands(bands[0], details)


def conditional_mean(q: Tensor, scale: Tensor) -> Tensor:
    """E[y | y in [q - 1/2, q + 1/2]] for y ~ N(0, scale²), in step units (scale >= 0.11).

    ``scale * (phi(a) - phi(b)) / (Phi(b) - Phi(a))`` with ``a, b = (q -+ 1/2) / scale``: 0 for
    ``q = 0``, shrunk towards 0 otherwise; far in the tail, where the bin's mass underflows,
    the bin centre.
    """
    scale = scale.float().clamp_min(0.11)
    a, b = (q - 0.5) / scale, (q + 0.5) / scale
    # symmetric: evaluate on |q| where the lower bin edge is the smaller tail
    sign = torch.sign(q)
    a, b = torch.minimum(a.abs(), b.abs()), torch.maximum(a.abs(), b.abs())
    a = torch.where(q == 0, -b, a)
    pdf = torch.exp(-0.5 * a * a) - torch.exp(-0.5 * b * b)
    mass = 0.5 * (torch.erfc(a / 2**0.5) - torch.erfc(b / 2**0.5))  # upper tails: no cancellation
    inside = mass > 1e-7
    mean = scale * pdf / (2 * math.pi) ** 0.5 / torch.where(inside, mass, 1.0)
    return torch.where(inside, sign * mean, q)


def _all(b: Subbands) -> list[Tensor]:
    return [b.ll, *(t for lv in b.details for t in lv)]
