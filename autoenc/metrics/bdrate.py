# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Bjøntegaard delta rate and quality (VCEG-M33) with a monotone cubic interpolator.

Method, exactly:

* **Interpolator**: piecewise cubic Hermite (PCHIP) with the derivative rule of scipy's
  ``PchipInterpolator`` (Fritsch-Carlson). An interior derivative is 0 where the neighbouring
  secant slopes differ in sign or either is 0, else their weighted harmonic mean with weights
  ``2h[k] + h[k-1]`` and ``h[k] + 2h[k-1]``. An end derivative is the one-sided three-point
  estimate, set to 0 if its sign differs from the end secant's and to 3x that secant if the
  first two secants differ in sign and it is larger. Two points give the straight line.
* **Integration** is exact: each cubic piece's closed-form antiderivative, summed over pieces.
  Nothing is ever extrapolated: evaluating outside the data range raises.
* **BD-rate**: per curve, fit ``ln R`` against quality; integrate both fits over the overlapping
  quality range; ``Δ`` = mean of (test - anchor); BD-rate = ``(e^Δ - 1) * 100`` %. Negative means
  the test codec needs fewer bits for the same quality.
* **BD-quality** (BD-PSNR when quality is PSNR; SSIM works too): fit quality against ``ln R``,
  mean of (test - anchor) over the overlapping ``ln R`` range.
* **Restricted BD-rate** (``max_quality``): the same over the overlap intersected with
  ``(-inf, max_quality]``, e.g. PSNR below the speckle cap, where PSNR does not reward coding
  noise; NaN when that intersection is empty.

PCHIP rather than VCEG-M33's cubic polynomial because it passes through every point and cannot
overshoot between them, where a cubic through four noisy points can bend backwards. Points with
a non-finite value or a rate <= 0 are dropped. Each curve is sorted by its independent variable;
a dependent variable that is not monotone (noisy points) is interpolated as it is, not forced
monotone: PCHIP goes flat at the local extrema and the BD value averages over the wiggle.
Repeated independent values raise, since no function passes through both points.

A fixed-rate model has one operating point: its BD-rate is ``R_test / R_anchor(q_test) - 1``
and its BD-quality ``q_test - q_anchor(R_test)``, anchor interpolated by PCHIP, defined only
when the point lies inside the anchor's range (``method == "single-point"``), and for a
restricted BD-rate only when its quality is at most ``max_quality``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autoenc.metrics.stats import bootstrap_means, check_bootstrap_args, percentile_interval

FloatArray = NDArray[np.float64]
Kind = Literal["rate", "quality"]


def _slopes(h: FloatArray, m: FloatArray) -> FloatArray:
    """Node derivatives from interval widths ``h`` and secant slopes ``m`` (scipy's rule)."""
    if m.size == 1:
        return np.array([m[0], m[0]])
    d = np.zeros(m.size + 1)
    w1, w2 = 2.0 * h[1:] + h[:-1], h[1:] + 2.0 * h[:-1]
    same = (np.sign(m[1:]) == np.sign(m[:-1])) & (m[1:] != 0) & (m[:-1] != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / m[:-1] + w2 / m[1:])
    d[1:-1] = np.where(same, harmonic, 0.0)
    for i, (h0, h1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        e = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            e = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(e) > 3.0 * abs(m0):
            e = 3.0 * m0
        d[i] = e
    return d


class Pchip:
    """Monotone piecewise cubic Hermite interpolant through ``(x, y)``; see the module docstring.

    On ``[x[k], x[k+1]]`` with ``s = x - x[k]`` the piece is ``c0 + c1 s + c2 s^2 + c3 s^3``.

    Attributes:
        x: Sorted, strictly increasing nodes.
        y: Values at the nodes.
        d: Derivatives at the nodes.
    """

    def __init__(self, x: ArrayLike, y: ArrayLike) -> None:
        xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if xa.ndim != 1 or xa.shape != ya.shape:
            raise ValueError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
        if xa.size < 2 or not (np.isfinite(xa).all() and np.isfinite(ya).all()):
            raise ValueError(f"need at least 2 finite points, got x={xa.tolist()} y={ya.tolist()}")
        order = np.argsort(xa, kind="stable")
        self.x, self.y = xa[order], ya[order]
        h = np.diff(self.x)
        if (h == 0).any():
            raise ValueError(f"duplicate x values {np.unique(self.x[1:][h == 0]).tolist()}")
        m = np.diff(self.y) / h
        self.d = _slopes(h, m)
        d0, d1 = self.d[:-1], self.d[1:]
        self._c = np.stack(
            [self.y[:-1], d0, (3.0 * m - 2.0 * d0 - d1) / h, (d0 + d1 - 2.0 * m) / h**2]
        )
        self._cum = np.concatenate([[0.0], np.cumsum(self._antiderivative(np.arange(h.size), h))])

    def _locate(self, xq: ArrayLike) -> tuple[NDArray[np.intp], FloatArray]:
        """Piece index and local offset of each query; raises outside the data range."""
        q = np.asarray(xq, dtype=np.float64)
        bad = ~((q >= self.x[0]) & (q <= self.x[-1]))
        if bad.any():
            raise ValueError(
                f"PCHIP does not extrapolate: {q[bad].ravel()[:5]} outside {self.x[[0, -1]]}"
            )
        k = np.clip(np.searchsorted(self.x, q, side="right") - 1, 0, self.x.size - 2)
        return k, q - self.x[k]

    def _antiderivative(self, k: NDArray[np.intp], s: FloatArray) -> FloatArray:
        c0, c1, c2, c3 = self._c[:, k]
        return s * (c0 + s * (c1 / 2.0 + s * (c2 / 3.0 + s * c3 / 4.0)))

    def __call__(self, xq: ArrayLike) -> FloatArray:
        """Evaluate at ``xq`` (any shape, inside ``[x[0], x[-1]]``)."""
        k, s = self._locate(xq)
        c0, c1, c2, c3 = self._c[:, k]
        return c0 + s * (c1 + s * (c2 + s * c3))

    def integrate(self, a: float, b: float) -> float:
        """Exact integral from ``a`` to ``b`` (both inside the data range; negative if a > b)."""
        k, s = self._locate([a, b])
        g = self._cum[k] + self._antiderivative(k, s)
        return float(g[1] - g[0])


def pchip(x: ArrayLike, y: ArrayLike) -> Pchip:
    """Build the PCHIP interpolant through ``(x, y)``; ``x`` is sorted, duplicates raise."""
    return Pchip(x, y)


@dataclass(frozen=True)
class BDResult:
    """One Bjøntegaard delta and what it was computed over.

    Attributes:
        value: Percent for BD-rate, quality units for BD-quality; NaN when there is no overlap.
        overlap: Interval averaged over (quality for BD-rate, bpp for BD-quality), or None.
        overlap_fraction: Overlap length over the test curve's range length (in ``ln R`` for
            BD-quality); 1.0 or 0.0 for a single point. Small values mean a fragile number.
        method: ``"pchip"`` or ``"single-point"``.
        n_anchor: Anchor points used (after dropping invalid ones).
        n_test: Test points used.
    """

    value: float
    overlap: tuple[float, float] | None
    overlap_fraction: float
    method: Literal["pchip", "single-point"]
    n_anchor: int
    n_test: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON results (NaN stays a float NaN)."""
        return asdict(self)


def _curve(rate: ArrayLike, quality: ArrayLike, name: str, least: int) -> tuple[FloatArray, ...]:
    """Validate one R-D curve and drop points with a non-finite value or a rate <= 0."""
    r, q = np.asarray(rate, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    if r.ndim != 1 or q.ndim != 1 or r.size != q.size:
        raise ValueError(
            f"{name}_rate and {name}_quality: need equal 1-D, got {r.shape}, {q.shape}"
        )
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    if keep.sum() < least:
        raise ValueError(f"{name} curve needs at least {least} valid point(s), got {keep.sum()}")
    return r[keep], q[keep]


def _merge_ties(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Average the points that share an abscissa.

    A codec asked for rates below its smallest file returns that file several times, so a
    ladder (or a bootstrap replicate of it) can hold the same rate twice; one point stands for
    them. Returns x sorted ascending.
    """
    ux, inverse = np.unique(x, return_inverse=True)
    if ux.size == x.size:
        order = np.argsort(x, kind="stable")
        return x[order], y[order]
    sums = np.bincount(inverse, weights=y)
    return ux, sums / np.bincount(inverse)


def _bd(
    kind: Kind,
    ar: ArrayLike,
    aq: ArrayLike,
    tr: ArrayLike,
    tq: ArrayLike,
    limit: float = np.inf,
) -> BDResult:
    """Shared BD-rate / BD-quality computation; ``kind`` picks the independent variable.

    ``limit`` caps the independent variable's range (the quality, for a restricted BD-rate).
    """
    ra, qa = _curve(ar, aq, "anchor", 2)
    rt, qt = _curve(tr, tq, "test", 1)
    xa, ya, xt, yt = (
        (qa, np.log(ra), qt, np.log(rt)) if kind == "rate" else (np.log(ra), qa, np.log(rt), qt)
    )
    xa, ya = _merge_ties(xa, ya)
    xt, yt = _merge_ties(xt, yt)
    if xa.size < 2:
        raise ValueError(f"anchor curve needs at least 2 distinct points, got {xa.tolist()}")
    anchor = Pchip(xa, ya)
    nan = float("nan")
    if xt.size == 1:
        method: Literal["pchip", "single-point"] = "single-point"
        lo = hi = float(xt[0])
        inside = bool(anchor.x[0] <= lo <= min(anchor.x[-1], limit))
        delta = float(yt[0] - anchor(lo)) if inside else nan
        fraction = 1.0 if inside else 0.0
    else:
        method, test = "pchip", Pchip(xt, yt)
        lo = float(max(anchor.x[0], test.x[0]))
        hi = float(min(anchor.x[-1], test.x[-1], limit))
        inside = hi > lo
        fraction = max(hi - lo, 0.0) / float(test.x[-1] - test.x[0])
        delta = (test.integrate(lo, hi) - anchor.integrate(lo, hi)) / (hi - lo) if inside else nan
    value = float(np.expm1(delta) * 100.0) if kind == "rate" else delta
    overlap = None
    if inside:
        overlap = (lo, hi) if kind == "rate" else (float(np.exp(lo)), float(np.exp(hi)))
    return BDResult(value, overlap, fraction, method, int(ra.size), int(rt.size))


def bd_rate(
    anchor_rate: ArrayLike,
    anchor_quality: ArrayLike,
    test_rate: ArrayLike,
    test_quality: ArrayLike,
    max_quality: float | None = None,
) -> BDResult:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent.

    Args:
        anchor_rate: Anchor rates (bpp), one per operating point.
        anchor_quality: Anchor quality (PSNR, SSIM, ...) at those points.
        test_rate: Test rates; a single point gives the ``"single-point"`` method.
        test_quality: Test quality.
        max_quality: Average only over qualities up to this (the overlap intersected with
            ``(-inf, max_quality]``); None for the whole overlap.

    Returns:
        The :class:`BDResult`; ``value`` is NaN and ``overlap`` None without a quality overlap.

    Raises:
        ValueError: On mismatched lengths, fewer than 2 valid anchor or 1 valid test point,
            repeated quality values within a curve, or a NaN ``max_quality``.
    """
    limit = np.inf if max_quality is None else float(max_quality)
    if np.isnan(limit):
        raise ValueError("max_quality must be a number or None, got NaN")
    return _bd("rate", anchor_rate, anchor_quality, test_rate, test_quality, limit)


def bd_quality(
    anchor_rate: ArrayLike, anchor_quality: ArrayLike, test_rate: ArrayLike, test_quality: ArrayLike
) -> BDResult:
    """Bjøntegaard delta quality (BD-PSNR for PSNR) of the test curve, in quality units.

    Arguments, return value and errors as :func:`bd_rate`, with the rate range overlapping
    (``overlap`` in bpp) and repeated rates raising.
    """
    return _bd("quality", anchor_rate, anchor_quality, test_rate, test_quality)


@dataclass(frozen=True)
class BootstrapBD:
    """A BD value on all samples with a paired percentile-bootstrap CI.

    Attributes:
        kind: ``"rate"`` (percent) or ``"quality"`` (quality units).
        point: The BD result on the mean curves over all samples.
        ci_lo: Lower CI end over the replicates that had an overlap (NaN if none).
        ci_hi: Upper CI end.
        level: Confidence level.
        n_boot: Replicates drawn (0 with fewer than two resampling units).
        n_overlap: Replicates with an overlap, the ones the CI uses.
        n: Samples per operating point.
        n_groups: Resampling units: groups with ``groups``, else ``n``.
    """

    kind: Kind
    point: BDResult
    ci_lo: float
    ci_hi: float
    level: float
    n_boot: int
    n_overlap: int
    n: int
    n_groups: int

    @property
    def value(self) -> float:
        """The point estimate."""
        return self.point.value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON results, with the point result nested and its value on top."""
        return {**asdict(self), "value": self.value}


def _samples(rates: ArrayLike, quality: ArrayLike, name: str) -> tuple[FloatArray, FloatArray]:
    """Validate per-sample (P, N) rates and quality: finite, rates > 0, equal shapes."""
    r, q = np.asarray(rates, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    if r.ndim != 2 or r.shape != q.shape or r.shape[1] == 0:
        raise ValueError(
            f"{name}_rates and {name}_quality must both have shape (P, N) with N >= 1, got "
            f"{r.shape} and {q.shape}"
        )
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(r) & np.isfinite(q) & (r > 0)
    if not ok.all():
        raise ValueError(f"{name}: {int((~ok).sum())} samples with non-finite values or rate <= 0")
    return r, q


def bootstrap_bd(
    anchor_rates: ArrayLike,
    anchor_quality: ArrayLike,
    test_rates: ArrayLike,
    test_quality: ArrayLike,
    kind: Kind = "rate",
    n_boot: int = 1000,
    seed: int = 0,
    groups: ArrayLike | None = None,
    level: float = 0.95,
    max_quality: float | None = None,
) -> BootstrapBD:
    """BD-rate or BD-quality with a paired (optionally cluster) percentile-bootstrap CI.

    Each curve point is the mean over samples of rate and of quality. A replicate resamples the
    N sample indices with replacement, the same ones for both codecs because they coded the same
    images, so image difficulty cancels; with ``groups`` whole groups (scenes) are resampled.
    Replicates without an overlap are left out of the CI and counted (``n_overlap``).

    Args:
        anchor_rates: Anchor per-sample rates, shape (P_anchor, N).
        anchor_quality: Anchor per-sample quality, same shape.
        test_rates: Test per-sample rates, shape (P_test, N), samples in the anchor's order.
        test_quality: Test per-sample quality, same shape.
        kind: ``"rate"`` for BD-rate, ``"quality"`` for BD-quality.
        n_boot: Number of replicates.
        seed: Seed of the draws.
        groups: Optional length-N labels for a cluster bootstrap.
        level: Confidence level.
        max_quality: BD-rate only: average over qualities up to this (see :func:`bd_rate`).

    Returns:
        The :class:`BootstrapBD`.

    Raises:
        ValueError: On bad shapes, non-finite samples, rates <= 0, a sample count differing
            between anchor and test, an unknown ``kind``, or ``max_quality`` with BD-quality.
    """
    if kind not in ("rate", "quality"):
        raise ValueError(f"kind must be 'rate' or 'quality', got {kind!r}")
    if kind == "quality" and max_quality is not None:
        raise ValueError(f"max_quality restricts a BD-rate only, got it with kind {kind!r}")
    check_bootstrap_args(n_boot, level)
    ar, aq = _samples(anchor_rates, anchor_quality, "anchor")
    tr, tq = _samples(test_rates, test_quality, "test")
    if ar.shape[1] != tr.shape[1]:
        raise ValueError(
            f"anchor has N={ar.shape[1]} samples but test has N={tr.shape[1]}; the paired "
            "bootstrap needs the same samples in the same order"
        )
    fn: Callable[..., BDResult] = (
        partial(bd_rate, max_quality=max_quality) if kind == "rate" else bd_quality
    )
    stacked = np.concatenate([ar, aq, tr, tq])  # (2 P_anchor + 2 P_test, N)
    cuts = np.cumsum([ar.shape[0], ar.shape[0], tr.shape[0]])
    point = fn(*np.split(stacked.mean(axis=1), cuts))
    means, n_units = bootstrap_means(stacked, n_boot, np.random.default_rng(seed), groups)
    means = means if n_units >= 2 else means[:0]  # one unit: no variability to resample
    values = np.array([fn(*np.split(row, cuts)).value for row in means], dtype=np.float64)
    valid = values[np.isfinite(values)]
    lo, hi = percentile_interval(valid, level)
    return BootstrapBD(kind, point, lo, hi, level, len(means), valid.size, ar.shape[1], n_units)
