# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""From per-sample records to operating points, R-D curves, BD-rates and paired deltas.

Curve points are means over the same patches (bpp and quality averaged separately, as
CompressAI does for Kodak). BD figures use PCHIP on ln(bpp) over the overlapping quality range
(:mod:`autoenc.metrics.bdrate`) and a paired percentile bootstrap over patches: each replicate
draws the same patches for the model and the anchor, so the interval reflects which images were
tested, not coding noise.

Regimes: an operating point is ``"above cap"`` when its mean PSNR against the speckled original
exceeds the speckle PSNR cap (``meta["psnr_cap"]``), else ``"below cap"``. Above the cap PSNR
rewards coding speckle, so the PSNR BD tables also give a BD-rate restricted to qualities at most
``cap - CAP_MARGIN_DB``: the usual overlap intersected with ``(-inf, cap - 0.3]``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from autoenc.evaluation.records import Results, column
from autoenc.metrics.bdrate import BDResult, BootstrapBD, bootstrap_bd
from autoenc.metrics.stats import Summary, summarize

log = logging.getLogger(__name__)

#: Metrics summarised per operating point, in report order.
METRICS = (
    "bpp", "stream_bpp", "psnr", "rmse_db", "ssim", "ms_ssim", "enl_ratio", "epi",
    "grad_ratio", "bias_db", "ratio_mean", "ratio_enl", "enl", "homogeneous_fraction",
    "psnr_truth", "enl_ratio_truth", "homogeneous_fraction_truth",
)  # fmt: skip
#: Per-sample columns kept but not summarised (rate targeting diagnostics).
EXTRA = ("hit", "encodes", "target_bpp", "encode_s", "decode_s")
ANCHOR = "jpeg2000"


#: Ratio metrics summarised by their geometric mean: a reconstruction that is flat in a few
#: patches has an ENL ratio of ~1e12 there, which would swamp an arithmetic mean.
GEOMETRIC = ("enl_ratio", "ratio_enl", "enl_ratio_truth")
#: The restricted BD-rate averages over qualities up to this far below the speckle cap (dB).
CAP_MARGIN_DB = 0.3


def regime(psnr_mean: float, cap: float) -> str:
    """``"above cap"`` if the mean PSNR exceeds the speckle cap, ``"below cap"`` if not.

    An empty string when either is not finite (no PSNR, or results without a cap).
    """
    if not (math.isfinite(psnr_mean) and math.isfinite(cap)):
        return ""
    return "above cap" if psnr_mean > cap else "below cap"


def _summary(
    key: str, values: np.ndarray, n_boot: int, seed: int, groups: np.ndarray | None = None
) -> Summary:
    """Arithmetic summary, or for :data:`GEOMETRIC` keys the summary of ln(v) mapped back.

    For those, ``mean`` is the geometric mean, ``ci_lo``/``ci_hi`` its interval, ``median``
    the median and ``std`` the geometric standard deviation factor exp(std(ln v)).
    """
    if key not in GEOMETRIC:
        return summarize(values, n_boot=n_boot, seed=seed, groups=groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = summarize(np.log(values), n_boot=n_boot, seed=seed, groups=groups)
    return replace(s, mean=math.exp(s.mean) if math.isfinite(s.mean) else math.nan,
                   std=math.exp(s.std) if math.isfinite(s.std) else math.nan,
                   median=math.exp(s.median) if math.isfinite(s.median) else math.nan,
                   ci_lo=math.exp(s.ci_lo) if math.isfinite(s.ci_lo) else math.nan,
                   ci_hi=math.exp(s.ci_hi) if math.isfinite(s.ci_hi) else math.nan)  # fmt: skip


@dataclass
class Point:
    """One operating point: a method's records over every patch, summarised."""

    method: str
    family: str
    curve: str
    point: str
    role: str
    matched_to: str
    n: int
    stats: dict[str, Summary]
    samples: dict[str, np.ndarray]  # per-patch columns, in patch-index order

    def mean(self, key: str) -> float:
        """Mean of one metric (NaN when absent)."""
        s = self.stats.get(key)
        return math.nan if s is None else float(s.mean)


def scene_groups(results: Results) -> np.ndarray:
    """Scene id of every patch, in patch-index order (for a cluster bootstrap by scene)."""
    recs = sorted(results.select(method=results.methods()[0]), key=lambda r: int(r["index"]))
    return np.array([str(r["scene_id"]) for r in recs])


def operating_points(
    results: Results, n_boot: int = 2000, seed: int = 0, groups: np.ndarray | None = None
) -> list[Point]:
    """Summarise every method (model, ladder and matched rows), ordered as evaluated.

    ``groups`` (one label per patch, e.g. :func:`scene_groups`) makes every interval a cluster
    bootstrap: whole scenes are redrawn, since patches of one scene are not independent.
    """
    points = []
    for method in results.methods():
        recs = sorted(results.select(method=method), key=lambda r: int(r["index"]))
        first = recs[0]
        samples = {k: column(recs, k) for k in (*METRICS, *EXTRA) if k in first}
        stats = {
            k: _summary(k, v, n_boot, seed, groups) for k, v in samples.items() if k in METRICS
        }
        points.append(
            Point(method, str(first["family"]), str(first["curve"]), str(first["point"]),
                  str(first["role"]), str(first["matched_to"]), len(recs), stats, samples)
        )  # fmt: skip
    return points


def curves(points: Sequence[Point]) -> dict[str, list[Point]]:
    """Model points grouped by curve, and classical ladders by codec, each sorted by bpp."""
    out: dict[str, list[Point]] = {}
    for p in points:
        if p.role in ("model", "ladder"):
            out.setdefault(p.curve, []).append(p)
    return {k: sorted(v, key=lambda p: p.mean("bpp")) for k, v in out.items()}


@dataclass
class BDRow:
    """BD figures of one curve against the anchor, with bootstrap intervals."""

    curve: str
    quality: str
    rate_key: str
    n_points: int
    bd_rate: Any  # BootstrapBD of the rate difference (%)
    bd_quality: Any  # BootstrapBD of the quality difference (dB for PSNR)
    bd_rate_below: Any = None  # BootstrapBD over qualities <= max_quality, or None
    max_quality: float | None = None  # upper end of that restricted range


def _stack(points: Sequence[Point], key: str) -> np.ndarray:
    return np.stack([p.samples[key] for p in points])  # (P, N)


def _distinct(points: Sequence[Point], rate: str) -> list[Point]:
    """Drop ladder points that repeat an earlier one patch for patch.

    Targets below a codec's floor all return its smallest file, so two ladder points can be the
    same encodes; a curve cannot pass through one rate twice.
    """
    out: list[Point] = []
    for p in points:
        if not any(np.array_equal(p.samples[rate], q.samples[rate]) for q in out):
            out.append(p)
    return out


def rising_branch(points: Sequence[Point], quality: str) -> list[Point]:
    """A curve's points by rate, up to its best mean ``quality`` (where it stops rising).

    PSNR against the clean truth first rises with rate and then falls back towards the
    speckled input's own score; a BD-rate needs quality as a function of rate to be invertible,
    so it is taken over this branch.
    """
    by_rate = sorted(points, key=lambda p: p.mean("bpp"))
    best = int(np.argmax([p.mean(quality) for p in by_rate]))
    return list(by_rate[: best + 1])


def _undefined_rate(like: BootstrapBD) -> BootstrapBD:
    """A BD-rate without overlap, shaped like ``like`` (rendered as a dash)."""
    none = BDResult(math.nan, None, 0.0, like.point.method, like.point.n_anchor, like.point.n_test)
    return replace(like, kind="rate", point=none, ci_lo=math.nan, ci_hi=math.nan, n_overlap=0)


def bd_table(
    points: Sequence[Point],
    quality: str = "psnr",
    anchor: str = ANCHOR,
    anchor_rate: str = "bpp",
    n_boot: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    max_quality: float | None = None,
    rising: bool = False,
) -> list[BDRow]:
    """BD-rate and BD-quality of every other curve against ``anchor``'s ladder.

    ``anchor_rate`` picks the anchor's rate column: ``bpp`` (file bytes, JP2 container
    included) or ``stream_bpp`` (codestream only, a stricter anchor at low rates). With
    ``max_quality`` each row also gets the BD-rate over qualities up to it (``bd_rate_below``;
    for PSNR, ``psnr_cap - CAP_MARGIN_DB``). With ``rising`` the BD-rate uses each curve's
    :func:`rising_branch` only (for non-monotone qualities such as ``psnr_truth``); BD-quality,
    at equal rate, always uses every point. Curves without ``quality`` are left out.
    """
    cv = curves(points)
    if anchor not in cv or any(quality not in p.samples for p in cv[anchor]):
        return []
    ref = _distinct(cv[anchor], anchor_rate)
    rows = []
    for name, pts in cv.items():
        if name == anchor or any(quality not in p.samples for p in pts):
            continue
        pts = _distinct(pts, "bpp")
        args = (_stack(ref, anchor_rate), _stack(ref, quality), _stack(pts, "bpp"),
                _stack(pts, quality))  # fmt: skip
        opts: dict[str, Any] = {"n_boot": n_boot, "seed": seed, "groups": groups}
        rate_args = args
        if rising:
            r_ref, r_pts = rising_branch(ref, quality), rising_branch(pts, quality)
            rate_args = (_stack(r_ref, anchor_rate), _stack(r_ref, quality),
                         _stack(r_pts, "bpp"), _stack(r_pts, quality))  # fmt: skip
        try:
            qual = bootstrap_bd(*args, kind="quality", **opts)
            if rising and len(r_ref) < 2:  # the anchor never rises: no BD-rate on this branch
                rate = _undefined_rate(qual)
            else:
                rate = bootstrap_bd(*rate_args, kind="rate", **opts)
            below = None
            if max_quality is not None:
                below = bootstrap_bd(*args, kind="rate", max_quality=max_quality, **opts)
        except ValueError as e:  # e.g. a non-finite quality on a point: say so, keep the rest
            log.warning("BD of %s against %s (%s) skipped: %s", name, anchor, quality, e)
            continue
        rows.append(BDRow(name, quality, anchor_rate, len(pts), rate, qual, below, max_quality))
    return rows


@dataclass
class Delta:
    """Paired difference model − matched classical codec on the same patches."""

    model: str
    anchor: str
    key: str
    model_mean: float
    anchor_mean: float
    delta: Summary  # of model − anchor, or for GEOMETRIC keys the geometric mean of model/anchor
    ratio: bool = False


def matched_deltas(
    points: Sequence[Point],
    keys: Sequence[str] = (
        "bpp",
        "psnr",
        "ssim",
        "enl_ratio",
        "epi",
        "psnr_truth",
        "enl_ratio_truth",
    ),  # fmt: skip
    groups: np.ndarray | None = None,
) -> list[Delta]:
    """For each model with a matched classical row, paired deltas per metric."""
    by_method = {p.method: p for p in points}
    out = []
    for p in points:
        if p.role != "matched" or p.matched_to not in by_method:
            continue
        m = by_method[p.matched_to]
        for k in keys:
            if k in m.samples and k in p.samples:
                if k in GEOMETRIC:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        d = _summary(k, m.samples[k] / p.samples[k], 2000, 0, groups)
                else:
                    d = summarize(m.samples[k] - p.samples[k], groups=groups)
                out.append(Delta(m.method, p.method, k, m.mean(k), p.mean(k), d, k in GEOMETRIC))
    return out


def nearest(points: Sequence[Point], bpp: float) -> dict[str, Point]:
    """Per curve, the operating point whose mean bpp is closest to ``bpp`` (in log rate)."""
    out = {}
    for name, pts in curves(points).items():
        ok = [p for p in pts if p.mean("bpp") > 0]
        if ok:
            out[name] = min(ok, key=lambda p: abs(math.log(p.mean("bpp") / bpp)))
    return out
