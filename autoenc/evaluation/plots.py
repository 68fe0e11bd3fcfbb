# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""R-D plots and the visual gallery (the only matplotlib import in autoenc).

Figures are drawn with the non-interactive Agg backend, so reports render on headless machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from autoenc.evaluation.summary import GEOMETRIC, Point, curves  # noqa: E402
from autoenc.sar.normalisation import unit_from_codes  # noqa: E402

#: (metric, axis label, reference line) of the four R-D panels.
PANELS = (
    ("psnr", "PSNR on the dB window (dB)", None),
    ("ssim", "SSIM (Gaussian 11, σ 1.5)", None),
    ("enl_ratio", "ENL ratio, geometric mean (log scale)", 1.0),
    ("epi", "EPI (Laplacian correlation)", 1.0),
)
#: The six panels with the clean truth (synthetic data), row by row in a 2x3 grid.
TRUTH_PANELS = (
    PANELS[0],
    ("psnr_truth", "PSNR against the clean truth (dB)", None),
    PANELS[1],
    PANELS[2],
    ("enl_ratio_truth", "ENL ratio, truth-homogeneous blocks (log scale)", 1.0),
    PANELS[3],
)


def _hline(ax: Any, y: float, text: str) -> None:
    """A dotted horizontal reference line labelled at the left edge."""
    ax.axhline(y, color="grey", linestyle=":", linewidth=1.2)
    ax.annotate(text, xy=(0.02, y), xycoords=("axes fraction", "data"), va="bottom", fontsize=8,
                color="grey")  # fmt: skip


def _style(curve: str, family: str, i: int) -> dict[str, Any]:
    classical = family == "classical"
    return {
        "marker": "s" if classical else "o",
        "linestyle": "--" if classical else "-",
        "color": "black" if curve == "jpeg2000" else f"C{i % 10}",
        "label": curve,
    }


def rd_figure(
    points: Sequence[Point],
    psnr_cap: float | None,
    title: str = "",
    truth_reference: float | None = None,
) -> Figure:
    """PSNR, SSIM, ENL ratio and EPI versus real bpp, mean ± 95 % CI per point.

    2x2 panels; 2x3 when the points carry ``psnr_truth`` (synthetic data), adding PSNR against
    the clean truth (with the speckled input's own PSNR vs truth, ``truth_reference``, as a
    "no coding" line) and the ENL ratio over truth-homogeneous blocks. The speckle cap line
    stays on the PSNR panel against the speckled original.
    """
    truth = any("psnr_truth" in p.stats for p in points)
    panels = TRUTH_PANELS if truth else PANELS
    shape, size = ((2, 3), (15.5, 8.5)) if truth else ((2, 2), (11, 8.5))
    fig, axes = plt.subplots(*shape, figsize=size, constrained_layout=True)
    cv = curves(points)
    for ax, (key, label, ref) in zip(axes.ravel(), panels, strict=True):
        drawn = False
        for i, (name, pts) in enumerate(cv.items()):
            pts = [p for p in pts if key in p.stats and math.isfinite(p.mean(key))]
            if not pts:
                continue
            drawn = True
            x = np.array([p.mean("bpp") for p in pts])
            y = np.array([p.mean(key) for p in pts])
            lo = np.array([p.stats[key].ci_lo for p in pts])
            hi = np.array([p.stats[key].ci_hi for p in pts])
            st = _style(name, pts[0].family, i)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], capsize=2, markersize=4, **st)
        if key == "psnr" and psnr_cap is not None and math.isfinite(psnr_cap):
            _hline(ax, psnr_cap, f"speckle cap {psnr_cap:.1f} dB")
        if key == "psnr_truth" and truth_reference is not None and math.isfinite(truth_reference):
            _hline(ax, truth_reference, f"speckled input (no coding) {truth_reference:.1f} dB")
        if not drawn:  # e.g. no block homogeneous in the truth: say so, not a blank panel
            ax.text(0.5, 0.5, "no finite values", transform=ax.transAxes, ha="center",
                    color="grey")  # fmt: skip
        if ref is not None:
            ax.axhline(ref, color="grey", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        if key in GEOMETRIC:
            ax.set_yscale("log")
        ax.set_xlabel("bits per pixel (real bytes)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def _zoom_box(err: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the largest mean absolute error."""
    h, w = err.shape
    size = min(size, h, w)
    c = np.pad(np.cumsum(np.cumsum(err, 0), 1), ((1, 0), (1, 0)))
    # window sums via the integral image: (h-size+1, w-size+1)
    s = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    y, x = np.unravel_index(int(np.argmax(s)), s.shape)
    return int(y), int(x)


def gallery_figure(
    gallery: Mapping[str, np.ndarray],
    index: int,
    rows: Sequence[tuple[str, str | None, str]],
    zoom: int = 64,
) -> Figure:
    """Original | model | JPEG 2000 at the model's bpp | both error maps, zoomed per row.

    Args:
        gallery: ``{"original/<i>": codes, "<method>/<i>": codes}`` (uint16 codes).
        index: the patch to show.
        rows: ``(model method, matched classical method or None, row label)`` per row.
        zoom: side of the zoom window, placed where the model's absolute error is largest.
    """
    orig = unit_from_codes(gallery[f"original/{index}"]).astype(np.float64)
    fig, axes = plt.subplots(
        len(rows), 5, figsize=(12.5, 2.6 * len(rows)), squeeze=False, constrained_layout=True
    )
    titles = ("original (zoom)", "model", "JPEG 2000, same bpp", "|error| model", "|error| J2K")
    for r, (model, anchor, label) in enumerate(rows):
        rec = unit_from_codes(gallery[f"{model}/{index}"]).astype(np.float64)
        ref = gallery.get(f"{anchor}/{index}") if anchor else None
        ref_f = None if ref is None else unit_from_codes(ref).astype(np.float64)
        y, x = _zoom_box(np.abs(rec - orig), zoom)
        win = (slice(y, y + zoom), slice(x, x + zoom))
        panels: list[np.ndarray | None] = [
            orig[win],
            rec[win],
            None if ref_f is None else ref_f[win],
        ]
        errs = [np.abs(rec - orig)[win], None if ref_f is None else np.abs(ref_f - orig)[win]]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            if img is not None:
                ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for c, e in enumerate(errs, start=3):
            if e is not None:
                axes[r, c].imshow(e, cmap="magma", vmin=0, vmax=0.3, interpolation="nearest")
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(f"{label}\n@({y},{x})", fontsize=8)
    return fig


def save(fig: Figure, path: Path) -> None:
    """Save as PNG (written to a temp name, then renamed) and close the figure."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
