# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Markdown tables of the report: operating points, BD figures, paired deltas, targeting.

Each function renders already-computed summaries (:mod:`autoenc.evaluation.summary`); nothing
here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from autoenc.evaluation.summary import (
    ANCHOR,
    CAP_MARGIN_DB,
    GEOMETRIC,
    BDRow,
    Point,
    matched_deltas,
    nearest,
    regime,
)

#: The cell of a restricted BD-rate whose range below the cap is empty.
EMPTY_BELOW_CAP = "—"


def fmt(v: float, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or an en dash for NaN/None."""
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def ci(s: Any, digits: int = 3) -> str:
    """``mean [ci_lo, ci_hi]`` of a summary."""
    return f"{fmt(s.mean, digits)} [{fmt(s.ci_lo, digits)}, {fmt(s.ci_hi, digits)}]"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def msd(s: Any, key: str, digits: int = 3) -> str:
    """``mean ± std [CI]``; for GEOMETRIC keys ``geometric mean ×/÷ geometric std [CI]``."""
    sep = "×/÷" if key in GEOMETRIC else "±"
    return (
        f"{fmt(s.mean, digits)} {sep} {fmt(s.std, digits)} "
        f"[{fmt(s.ci_lo, digits)}, {fmt(s.ci_hi, digits)}]"
    )


#: (metric, column title, digits) of the two operating-point tables.
MAIN_COLUMNS = (("bpp", "bpp", 3), ("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 3),
                ("enl_ratio", "ENL ratio", 2), ("epi", "EPI", 3))  # fmt: skip
MORE_COLUMNS = (("ms_ssim", "MS-SSIM", 3), ("rmse_db", "RMSE (dB)", 2),
                ("bias_db", "bias (dB)", 2), ("grad_ratio", "gradient ratio", 3),
                ("ratio_mean", "ratio-image mean", 3), ("ratio_enl", "ratio-image ENL", 2),
                ("stream_bpp", "codestream bpp", 3))  # fmt: skip
#: Columns of the table against the clean truth (synthetic data only).
TRUTH_COLUMNS = (("bpp", "bpp", 3), ("psnr", "PSNR vs original (dB)", 2),
                 ("psnr_truth", "PSNR vs truth (dB)", 2),
                 ("enl_ratio_truth", "ENL ratio, truth-homogeneous blocks", 2),
                 ("homogeneous_fraction_truth", "truth-homogeneous block fraction", 3))  # fmt: skip


def points_table(
    points: Sequence[Point], columns: Sequence[tuple[str, str, int]], cap: float = math.nan
) -> str:
    """One row per model or ladder point: ``mean ± std [CI]`` per metric column.

    With a finite speckle ``cap`` each row also says its regime (:func:`regime`).
    """
    labelled = math.isfinite(cap)
    rows = []
    for p in points:
        if p.role == "matched":
            continue
        cells = [msd(p.stats[k], k, d) if k in p.stats else "–" for k, _, d in columns]
        label = [regime(p.mean("psnr"), cap) or "–"] if labelled else []
        rows.append([p.method, str(p.n), *label, *cells])
    head = ["method", "n", *(["regime"] if labelled else []), *(t for _, t, _ in columns)]
    return table(head, rows)


def bd_dicts(rows: Sequence[BDRow]) -> list[dict[str, Any]]:
    """The BD table as JSON-ready dicts (what ``bd.json`` holds and the README renders).

    ``bd_rate_below_cap`` (None when not computed) is the BD-rate over qualities up to
    ``max_quality`` (``psnr_cap - 0.3`` dB in the PSNR tables).
    """
    return [
        {"curve": r.curve, "quality": r.quality, "anchor": ANCHOR, "anchor_rate": r.rate_key,
         "points": r.n_points, "bd_rate": r.bd_rate.to_dict(),
         "bd_quality": r.bd_quality.to_dict(),
         "bd_rate_below_cap": None if r.bd_rate_below is None else r.bd_rate_below.to_dict(),
         "max_quality": r.max_quality}
        for r in rows
    ]  # fmt: skip


def _with_ci(d: dict[str, Any], digits: int, unit: str = "") -> str:
    return f"{fmt(d['value'], digits)}{unit} [{fmt(d['ci_lo'], digits)}, {fmt(d['ci_hi'], digits)}]"


def _below_cell(d: dict[str, Any] | None) -> str:
    """The restricted BD-rate with its CI, or :data:`EMPTY_BELOW_CAP` without an overlap."""
    if d is None or d["point"]["overlap"] is None:
        return EMPTY_BELOW_CAP
    return _with_ci(d, 1, " %")


def bd_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Render BD dicts (from :func:`bd_dicts` or ``bd.json``) as a Markdown table.

    The quality column is headed BD-PSNR when the quality is a PSNR. When the rows carry a
    restricted BD-rate (``bd_rate_below_cap``), it gets a column; its cell is
    :data:`EMPTY_BELOW_CAP` when the overlap below ``max_quality`` is empty.
    """
    if not rows:
        return "_no JPEG 2000 ladder in these results_\n"
    limit = next((r.get("max_quality") for r in rows if r.get("max_quality") is not None), None)
    out = []
    for r in rows:
        br, bq = r["bd_rate"], r["bd_quality"]
        ov = br["point"]["overlap"]
        cells = [r["curve"], str(r["points"]), br["point"]["method"], _with_ci(br, 1, " %"),
                 _with_ci(bq, 2), "–" if ov is None else f"{ov[0]:.3g}–{ov[1]:.3g}",
                 f"{br['n_overlap']}/{br['n_boot']}"]  # fmt: skip
        if limit is not None:
            cells.insert(4, _below_cell(r.get("bd_rate_below_cap")))
        out.append(cells)
    psnr = all(str(r["quality"]).startswith("psnr") for r in rows)
    head = [*BD_HEAD[:3], "BD-rate [95 % CI]", "BD-PSNR (dB) [95 % CI]" if psnr else
            "BD-quality [95 % CI]", *BD_HEAD[3:]]  # fmt: skip
    if limit is not None:
        head.insert(4, f"BD-rate, PSNR ≤ {limit:.2f} dB (cap − {CAP_MARGIN_DB:g}) [95 % CI]")
    text = table(head, out)
    if any(r["bd_rate"]["point"]["overlap"] is None for r in rows):
        text += (
            "\nA dash: no overlap. The curve's quality lies outside the anchor's range (e.g. below "
            "the quality of JPEG 2000's smallest file), so a BD-rate would need extrapolation; "
            "the BD-quality, at equal rate, is still defined.\n"
        )
    if limit is not None and EMPTY_BELOW_CAP in [c[4] for c in out]:
        text += (
            f"\n{EMPTY_BELOW_CAP} below the cap: the overlap has no part at or below "
            f"{limit:.2f} dB, or the fixed-rate model's point lies above it.\n"
        )
    return text


#: Columns of every BD table; the BD-rate and BD-quality columns go after the first three.
BD_HEAD = ["curve vs JPEG 2000", "points", "method", "overlap (quality)",
           "replicates with overlap"]  # fmt: skip


def matched_table(points: Sequence[Point], groups: np.ndarray | None) -> str:
    """Each model against the classical codec coded at its per-patch bpp (paired)."""
    rows = []
    for d in matched_deltas(points, groups=groups):
        delta = f"×{ci(d.delta)}" if d.ratio else ci(d.delta)
        rows.append([d.model, d.key, fmt(d.model_mean), fmt(d.anchor_mean), delta])
    head = ["model", "metric", "model", "JPEG 2000 at the same bpp",
            "model − J2K (ENL ratio: × model / J2K) [95 % CI]"]  # fmt: skip
    return table(head, rows) if rows else "_no matched rows_\n"


def near_one_table(points: Sequence[Point], bpp: float = 1.0, cap: float = math.nan) -> str:
    """Per curve, the operating point nearest ``bpp``: ENL ratio, EPI, PSNR and its regime."""
    rows = []
    for name, p in nearest(points, bpp).items():
        s = p.stats
        rows.append([name, p.point, fmt(p.mean("bpp")), ci(s["enl_ratio"], 2), ci(s["epi"]),
                     ci(s["psnr"], 2), regime(p.mean("psnr"), cap) or "–"])  # fmt: skip
    return table(["curve", "point", "bpp", "ENL ratio", "EPI", "PSNR (dB)", "regime"], rows)


def targeting(points: Sequence[Point]) -> str:
    """How well the classical codecs hit their targets, and why they missed."""
    total = hits = 0
    floor: list[str] = []
    steps: list[str] = []
    for p in points:
        if "hit" not in p.samples or p.family != "classical":
            continue
        miss = p.samples["hit"] < 0.5
        total += miss.size
        hits += int((~miss).sum())
        above = miss & (p.samples["bpp"] > p.samples["target_bpp"])  # could not go that low
        if above.any():
            floor.append(f"{p.method} ({int(above.sum())}/{miss.size})")
        if (miss & ~above).any():
            steps.append(f"{p.method} ({int((miss & ~above).sum())}/{miss.size})")
    enc = [p.samples["encodes"] for p in points if "encodes" in p.samples]
    mean_enc = sum(float(e.sum()) for e in enc) / max(1, sum(e.size for e in enc))
    text = (
        f"{hits} of {total} classical encodes landed within 3 % of their target bpp, "
        f"{mean_enc:.2f} encoder calls each on average."
    )
    if floor:
        text += (
            " Above the target because the codec cannot make a smaller file for that patch "
            "(its header and minimal codestream): " + ", ".join(floor) + "."
        )
    if steps:
        text += (
            " Below the target by more than 3 % (file size moves in steps; the closest encode "
            "not above the target is kept): " + ", ".join(steps) + "."
        )
    return text + "\n"
