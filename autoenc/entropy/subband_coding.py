# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Range coding of :class:`~autoenc.entropy.subband_context.SubbandContext` stages.

The context model computes log-scales stage by stage; this module turns them into table
indexes, codes the symbols and reconstructs them:

* :func:`positions` — the flat positions of a band's anchors (or the rest), numpy, cached;
* :func:`thresholds` — integer contexts' exact index thresholds (float64 maths, cached);
* :class:`StageDecoder` — the decoder's hook of ``SubbandContext._run``: decodes a stage's
  symbols straight into their bands (numpy, one scatter per table) before the next stage;
* :func:`dequantise` — the conditional means of the decoded symbols, computed only where a
  symbol is non-zero (a zero symbol's conditional mean is exactly 0 by symmetry).

Invariants:
    * the stream order is the encoder's: stage by stage, band by band, item by item, and
      within a band by table (:class:`autoenc.entropy.coder.TableCoder`);
    * each item's CRC32 covers its table indexes as int32, in stream order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

if TYPE_CHECKING:  # the context model imports this module
    from autoenc.entropy.subband_context import Stage, SubbandContext


def checkerboard(h: int, w: int, device: torch.device) -> Tensor:
    """(1, 1, h, w) float mask, 1 on the anchors ((i + j) even); shared: never modify it."""
    return _checkerboard(int(h), int(w), torch.device(device))


@lru_cache(maxsize=64)
def _checkerboard(h: int, w: int, device: torch.device) -> Tensor:
    # made outside inference mode, so a mask cached while coding also serves training
    with torch.inference_mode(False):
        i = torch.arange(h, device=device)[:, None]
        j = torch.arange(w, device=device)[None, :]
        return ((i + j) % 2 == 0).float()[None, None]


@lru_cache(maxsize=128)
def positions(h: int, w: int, anchors: bool | None) -> npt.NDArray[np.intp] | None:
    """Row-major flat positions of an ``h`` x ``w`` band's anchors ((i + j) even) or the rest.

    The order of a boolean mask's ``True`` entries; read-only (shared). ``None`` for
    ``anchors=None`` (a one-stage level: every position, in order).
    """
    if anchors is None:
        return None
    i = np.arange(h)[:, None]
    j = np.arange(w)[None, :]
    pos = np.flatnonzero(((i + j) % 2 == 0) == anchors)
    pos.setflags(write=False)
    return pos


@lru_cache(maxsize=256)
def thresholds(table: tuple[float, ...], step: float, exponent: int) -> npt.NDArray[np.float32]:
    """Integer-context index thresholds: ``idx = #{j : r >= t_j}`` for ``r`` on ``2**-exponent``.

    ``table_j < exp(r) / step`` (the float rule: the smallest table scale >= the scale) is
    ``r > log(table_j) + log(step)``; for ``r = acc * 2**-e`` with an integer ``acc`` that is
    ``acc >= floor(2**e * (log(table_j) + log(step))) + 1``. float64 maths, then exact.
    Read-only (shared).
    """
    g = 2.0**exponent
    log_step = math.log(step) if step > 0 else -math.inf
    t = np.array([(math.floor(g * (math.log(v) + log_step)) + 1) / g for v in table[:-1]])
    t = t.astype(np.float32)
    t.setflags(write=False)
    return t


#: Largest index lookup table (entries, one byte each); wider grids use a binary search.
MAX_LUT = 1 << 22


@lru_cache(maxsize=256)
def _index_lut(
    table: tuple[float, ...], step: float, exponent: int
) -> tuple[int, npt.NDArray[np.uint8]] | None:
    """``(lo, lut)``: the index of ``r = acc * 2**-exponent`` is ``lut[clip(acc, lo, hi) - lo]``."""
    if len(table) > 256:
        return None
    t = thresholds(table, step, exponent)
    if not np.isfinite(t).all():
        return None
    ints = np.round(t.astype(np.float64) * 2.0**exponent).astype(np.int64)  # exact
    lo, hi = int(ints[0]) - 1, int(ints[-1])
    if hi - lo + 1 > MAX_LUT:
        return None
    lut = np.searchsorted(ints, np.arange(lo, hi + 1), side="right").astype(np.uint8)
    lut.setflags(write=False)
    return lo, lut


def grid_indexes(
    log_scale: npt.NDArray[np.float32], table: tuple[float, ...], step: float, exponent: int
) -> npt.NDArray[np.integer]:
    """Integer-context table indexes of log-scales on the grid ``2**-exponent``.

    ``#{j : r >= thresholds_j}``, by a lookup table over the grid (``r * 2**exponent`` is an
    integer, as :class:`~autoenc.layers.integer.IntegerConvNet` outputs are), else by a
    binary search: the same indexes either way.
    """
    found = _index_lut(table, step, exponent)
    if found is None:
        return np.searchsorted(thresholds(table, step, exponent), log_scale, side="right")
    lo, lut = found
    acc = np.multiply(log_scale, np.float32(2.0**exponent), dtype=np.float32)  # exact
    np.clip(acc, lo, lo + len(lut) - 1, out=acc)
    acc -= lo  # exact: small integers
    out: npt.NDArray[np.uint8] = lut[acc.astype(np.intp)]
    return out


class StageDecoder:
    """Decodes the streams of a batch of items, stage by stage, into (B, 1, h, w) bands.

    Called by ``SubbandContext._run`` (as its hook) with each stage's log-scales; fills the
    stage's symbols into :attr:`bands` (on the context's device) before the next stage
    reads them, and keeps each item's CRC32 of its table indexes in :attr:`crcs`.
    """

    def __init__(
        self,
        context: SubbandContext,
        strings: Sequence[bytes],
        shapes: Sequence[Sequence[int]],
        steps: Sequence[float],
        device: torch.device,
    ) -> None:
        """Open one stream per item; ``shapes``: each band's (h, w), in ``flat`` order."""
        n = len(strings)
        self.context = context
        self.bands = [torch.zeros(n, 1, int(h), int(w), device=device) for h, w in shapes]
        on_cpu = torch.device(device).type == "cpu"
        self._host = self.bands if on_cpu else [torch.zeros(t.shape) for t in self.bands]
        gc = context.gaussian_conditional
        self._decoders = [gc.stream_decoder(bytes(b)) for b in strings]
        self.crcs = [0] * n
        self.steps = [float(v) for v in steps]
        self._exponents: dict[Stage, list[int]] = {}

    def _exps(self, stage: Stage) -> list[int] | None:
        if not self.context.integer:
            return None
        if stage not in self._exponents:
            self._exponents[stage] = self.context.stage_exponents(stage)
        return self._exponents[stage]

    def __call__(self, stage: Stage, values: list[Tensor]) -> None:
        """Decode ``stage``'s symbols, whose log-scales are ``values`` (one (B, 1, h, w) a band)."""
        exps = self._exps(stage)
        for j, (i, v) in enumerate(zip(stage[0], values, strict=True)):
            band = self._host[i]
            pos = positions(band.shape[-2], band.shape[-1], stage[1])
            logs = v.detach().float().cpu().numpy()
            out = band.numpy()
            for item, decoder in enumerate(self._decoders):
                r = logs[item, 0].reshape(-1)
                r = r if pos is None else r[pos]
                e = None if exps is None else exps[j]
                idx = self.context.index_array(r, self.steps[item], e)
                decoder.decode_into(idx, out[item, 0].reshape(-1), pos)
                self.crcs[item] = zlib.crc32(idx.astype(np.int32).data, self.crcs[item])
            if band is not self.bands[i]:
                self.bands[i].copy_(band)


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


def dequantise(q: Tensor, log_scale: Tensor, step: Tensor, shrink: float | None = None) -> Tensor:
    """Coefficients (B, 1, h, w) of symbols ``q`` with log-scales ``log_scale`` at ``step`` (B,).

    ``conditional_mean(q, exp(r) / step) * step`` where ``q != 0``, 0 elsewhere (exactly what
    the conditional mean gives there); with ``shrink`` (a variance, coefficient units), each
    is multiplied by ``max(0, 1 - shrink / (scale * step)²)`` (decode-time despeckling).
    """
    out = torch.zeros_like(q)
    nz = torch.nonzero(q.reshape(-1)).squeeze(1)
    if nz.numel() == 0:
        return out
    s = step.float().to(q.device).reshape(-1)
    per = q[0].numel()
    s_nz = s[nz // per] if bool((s != s[0]).any()) else s[:1]
    scale = torch.exp(log_scale.reshape(-1)[nz].clamp(-12.0, 12.0)) / s_nz
    y = conditional_mean(q.reshape(-1)[nz], scale) * s_nz
    if shrink is not None:
        y = y * torch.clamp(1.0 - float(shrink) / (scale.clamp_min(0.11) * s_nz) ** 2, min=0.0)
    out.view(-1)[nz] = y
    return out


def sums_of_products(device: torch.device, integer: bool) -> AbstractContextManager[Any]:
    """On CUDA, integer contexts convolve without cuDNN while coding.

    cuDNN may pick Winograd or FFT algorithms, whose transforms are not sums of integer
    products and would break the exactness the integer nets rely on; PyTorch's native CUDA
    convolution is an im2col GEMM in float32: exact here. CPUs (oneDNN, direct and GEMM
    kernels) need nothing.
    """
    if not integer or torch.device(device).type != "cuda":
        return nullcontext()
    return torch.backends.cudnn.flags(enabled=False)


def float32_only(device: torch.device) -> torch.autocast:
    """Autocast off: the scales that drive the coder are float32 whatever the caller's mode."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)
