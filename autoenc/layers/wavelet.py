# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The CDF 9/7 wavelet of JPEG 2000 as a lifting scheme, in torch, with its exact inverse.

One level splits an image into four subbands (LL, HL, LH, HH) of half the size; ``levels``
levels recurse on LL (Mallat decomposition). Lifting (Daubechies & Sweldens 1998) with the
irreversible 9/7 coefficients of JPEG 2000 Part 1, whole-sample symmetric extension at the
borders, and the scaling that makes the transform close to orthonormal, so a uniform quantiser
step means about the same squared error in every subband (the basis of a wavelet codec that
starts at JPEG 2000's quality before any learning).

Invariants:
    * :func:`idwt2` ∘ :func:`dwt2` is the identity up to float rounding, for any even sides
      (``H`` and ``W`` multiples of ``2**levels``);
    * subband ``k`` of level ``l`` (1 = finest) has shape ``(B, C, H / 2**l, W / 2**l)``;
    * a constant image has all its energy in LL (zero detail bands, up to rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: Lifting coefficients of the irreversible 9/7 (JPEG 2000 Part 1, Annex F).
ALPHA = -1.586134342059924
BETA = -0.052980118572961
GAMMA = 0.882911075530934
DELTA = 0.443506852043971
#: DC gain of the low band after the four lifting steps (and 2 / KAPPA the Nyquist gain of the
#: high band); the bands are rescaled to gain sqrt(2) each, which makes the transform close to
#: orthonormal.
KAPPA = 1.230174104914001
_LOW = 2**0.5 / KAPPA
_HIGH = KAPPA / 2**0.5


@dataclass(frozen=True)
class Subbands:
    """A Mallat decomposition: ``ll`` and, coarsest level first, ``(HL, LH, HH)`` per level.

    ``details[0]`` is the coarsest level (the same size as ``ll``), ``details[-1]`` the finest.
    HL holds horizontal high-pass (vertical edges), LH vertical high-pass, HH both.
    """

    ll: Tensor
    details: tuple[tuple[Tensor, Tensor, Tensor], ...]

    @property
    def levels(self) -> int:
        """Number of decomposition levels."""
        return len(self.details)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Subbands:
        """Apply ``fn`` to every subband."""
        details = tuple((fn(a), fn(b), fn(c)) for a, b, c in self.details)
        return Subbands(fn(self.ll), details)


def _cut(a: Tensor, dim: int, start: int, stop: int | None) -> Tensor:
    """``a[start:stop]`` along ``dim`` (a view)."""
    index = [slice(None)] * a.ndim
    index[dim] = slice(start, stop)
    return a[tuple(index)]


def _even_odd(a: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``(a[0::2], a[1::2])`` along ``dim`` (views)."""
    index = [slice(None)] * a.ndim
    index[dim] = slice(0, None, 2)
    even = a[tuple(index)]
    index[dim] = slice(1, None, 2)
    return even, a[tuple(index)]


def _pair_next(a: Tensor, coef: float, dim: int) -> Tensor:
    """``coef * (a[n] + a[n + 1])`` along ``dim``, whole-sample symmetric at the end."""
    if a.requires_grad or torch.onnx.is_in_onnx_export():  # out=: no autograd, no ONNX
        nxt = torch.cat([_cut(a, dim, 1, None), _cut(a, dim, -1, None)], dim=dim)
        return coef * (a + nxt)
    t = torch.empty_like(a, memory_format=torch.contiguous_format)
    torch.add(_cut(a, dim, 0, -1), _cut(a, dim, 1, None), out=_cut(t, dim, 0, -1))
    torch.add(_cut(a, dim, -1, None), _cut(a, dim, -1, None), out=_cut(t, dim, -1, None))
    return t.mul_(coef)


def _pair_prev(a: Tensor, coef: float, dim: int) -> Tensor:
    """``coef * (a[n - 1] + a[n])`` along ``dim``, whole-sample symmetric at the start."""
    if a.requires_grad or torch.onnx.is_in_onnx_export():
        prev = torch.cat([_cut(a, dim, 0, 1), _cut(a, dim, 0, -1)], dim=dim)
        return coef * (prev + a)
    t = torch.empty_like(a, memory_format=torch.contiguous_format)
    torch.add(_cut(a, dim, 0, 1), _cut(a, dim, 0, 1), out=_cut(t, dim, 0, 1))
    torch.add(_cut(a, dim, 0, -1), _cut(a, dim, 1, None), out=_cut(t, dim, 1, None))
    return t.mul_(coef)


def _analysis_1d(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """One lifting level along ``dim``: (low, high), each half as long.

    Rows (``dim=-2``) are lifted as whole contiguous rows, with no transpose: the same float
    operations on every element, in the same order, whichever axis.
    """
    s, d = _even_odd(x, dim)
    d = d + _pair_next(s, ALPHA, dim)
    s = s + _pair_prev(d, BETA, dim)
    d += _pair_next(s, GAMMA, dim)
    s += _pair_prev(d, DELTA, dim)
    return s.mul_(_LOW), d.mul_(_HIGH)


def _synthesis_1d(s: Tensor, d: Tensor, dim: int) -> Tensor:
    """Inverse of :func:`_analysis_1d`: the interleaved signal along ``dim``.

    Without autograd the lifting runs in place in the two halves of the output (no stack).
    """
    if s.requires_grad or d.requires_grad or torch.onnx.is_in_onnx_export():
        s = s / _LOW
        d = d / _HIGH
        s = s - _pair_prev(d, DELTA, dim)
        d = d - _pair_next(s, GAMMA, dim)
        s = s - _pair_prev(d, BETA, dim)
        d = d - _pair_next(s, ALPHA, dim)
        axis = dim % s.ndim  # interleave: (..., n, 2, ...) -> (..., 2n, ...)
        return torch.stack([s, d], dim=axis + 1).flatten(axis, axis + 1)
    shape = list(s.shape)
    shape[dim] *= 2
    out = s.new_empty(shape)
    s_out, d_out = _even_odd(out, dim)
    torch.div(s, _LOW, out=s_out)
    torch.div(d, _HIGH, out=d_out)
    s_out -= _pair_prev(d_out, DELTA, dim)
    d_out -= _pair_next(s_out, GAMMA, dim)
    s_out -= _pair_prev(d_out, BETA, dim)
    d_out -= _pair_next(s_out, ALPHA, dim)
    return out


def _check(x: Tensor, levels: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(x.shape)}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    m = 2**levels
    if x.shape[-1] % m or x.shape[-2] % m:
        raise ValueError(f"sides must be multiples of 2**levels = {m}, got {tuple(x.shape[-2:])}")


def dwt2(x: Tensor, levels: int) -> Subbands:
    """``levels``-level 2-D CDF 9/7 analysis of ``(B, C, H, W)``, H and W multiples of 2**levels."""
    _check(x, levels)
    details = []
    ll = x
    for _ in range(levels):
        lo, hi = _analysis_1d(ll, -1)  # along W
        ll_next, lh = _analysis_1d(lo, -2)  # along H
        hl, hh = _analysis_1d(hi, -2)
        details.append((hl, lh, hh))
        ll = ll_next
    return Subbands(ll, tuple(details[::-1]))


def idwt2(bands: Subbands) -> Tensor:
    """Inverse of :func:`dwt2`."""
    ll = bands.ll
    for hl, lh, hh in bands.details:
        ll = synthesis_level(ll, hl, lh, hh)
    return ll


def synthesis_level(ll: Tensor, hl: Tensor, lh: Tensor, hh: Tensor) -> Tensor:
    """One level of :func:`idwt2`: four same-shape subbands -> the image twice their size."""
    lo = _synthesis_1d(ll, lh, -2)
    hi = _synthesis_1d(hl, hh, -2)
    return _synthesis_1d(lo, hi, -1)
