# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""First pass of ``autoenc prepare``: stream a scene once for its dB histogram and borders.

A fixed-bin histogram (0.01 dB over ±100 dB) per scene is all the dB window needs: the window
comes from the sum of the *training* scenes' histograms, so no scene is ever held in memory
and val/test scenes cannot shape the normalisation. The same pass finds, per row, the first
and last non-zero column, which locates untagged zero borders for the second pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.sar.geotiff import SceneReader, blocks
from autoenc.sar.histogram import DbBins
from autoenc.sar.radiometry import (
    NODATA,
    NONPOSITIVE,
    REASONS,
    VALID,
    ZERO_BORDER,
    BlockConverter,
)

HIST_LO_DB, HIST_HI_DB, HIST_BIN_DB = -100.0, 100.0, 0.01
#: The scan's bins (the cached histograms of ``.prepare/scan`` have this many).
BINS = DbBins(HIST_LO_DB, HIST_HI_DB, HIST_BIN_DB)
HIST_BINS = BINS.n


def db_to_bin(db: NDArray[np.float32]) -> NDArray[np.intp]:
    """Histogram bin of each dB value (values beyond ±100 dB land in the end bins)."""
    return BINS.index(db)


@dataclass
class ScanResult:
    """What pass 1 learns about one scene (cached under ``.prepare/scan``)."""

    hist: NDArray[np.int64]  # (HIST_BINS,) valid pixels per 0.01 dB bin
    first: NDArray[np.int64]  # (H,) first non-zero column of each row (W if none)
    last: NDArray[np.int64]  # (H,) last non-zero column of each row (-1 if none)
    counts: dict[str, int]  # pixels per reason (REASONS)

    @property
    def valid(self) -> int:
        """Number of valid pixels."""
        return int(self.counts["valid"])


def scan_scene(
    reader: SceneReader,
    conv: BlockConverter,
    block_rows: int = 256,
    block_cols: int = 4096,
    advance: Callable[[int], None] | None = None,
) -> ScanResult:
    """Stream one band in windows; memory is O(block), whatever the scene size.

    ``advance(rows)`` is called after each full-width strip (for progress bars).
    """
    h, w = reader.height, reader.width
    first = np.full(h, w, dtype=np.int64)
    last = np.full(h, -1, dtype=np.int64)
    counts = np.zeros(len(REASONS), dtype=np.int64)
    hist = np.zeros(HIST_BINS, dtype=np.int64)
    dn_hist = np.zeros(1 << 16, dtype=np.int64) if _dn_fast_path(reader, conv) else None
    none_first, none_last = np.full(block_rows, -1), np.full(block_rows, 1 << 62)
    for r, c, bh, bw in blocks(h, w, block_rows, block_cols):
        raw = reader.read(r, c, bh, bw)
        nz = raw != 0  # NaN counts as non-zero: it is its own reason
        has = nz.any(axis=1)
        lo = c + nz.argmax(axis=1)
        hi = c + bw - 1 - nz[:, ::-1].argmax(axis=1)
        first[r : r + bh] = np.where(has, np.minimum(first[r : r + bh], lo), first[r : r + bh])
        last[r : r + bh] = np.where(has, np.maximum(last[r : r + bh], hi), last[r : r + bh])
        if dn_hist is not None:
            dn_hist += np.bincount(raw.ravel(), minlength=1 << 16)
        else:
            # No border yet (extents are not final): border zeros count as their value's reason.
            reasons = conv.reasons(raw, none_first[:bh], none_last[:bh], c)
            counts += np.bincount(reasons.ravel(), minlength=len(REASONS))
            valid = reasons == VALID
            hist += np.bincount(db_to_bin(conv.to_db(raw, r, c))[valid], minlength=HIST_BINS)
        if advance is not None and c + bw >= w:
            advance(bh)
    if dn_hist is not None:
        counts, hist = _from_dn_hist(dn_hist, conv)
    border = _border_pixels(first, last, w)
    if conv.nodata == 0:
        first[:], last[:] = 0, w - 1  # zeros are tagged: they count as nodata, not border
    elif conv.kind == "db":
        # Border zeros were valid 0 dB values (the floor is below 0 dB, else they sit there).
        b = int(db_to_bin(np.asarray([max(0.0, conv.floor_db)], dtype=np.float32))[0])
        hist[b] -= border
        counts[VALID] -= border
        counts[ZERO_BORDER] += border
    else:
        counts[NONPOSITIVE] -= border  # border zeros were counted as values <= 0
        counts[ZERO_BORDER] += border
    return ScanResult(hist, first, last, {k: int(v) for k, v in zip(REASONS, counts, strict=True)})


def _dn_fast_path(reader: SceneReader, conv: BlockConverter) -> bool:
    """16-bit DN with a constant (or no) calibration: a DN histogram says everything."""
    return (
        conv.kind == "amplitude"
        and reader.dtype in (np.uint8, np.uint16)
        and conv.calibration.lut is None
    )


def _from_dn_hist(
    dn_hist: NDArray[np.int64], conv: BlockConverter
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Reason counts and the dB histogram from a DN histogram (before border correction)."""
    counts = np.zeros(len(REASONS), dtype=np.int64)
    dn_hist = dn_hist.copy()
    if conv.nodata is not None and 0 <= conv.nodata < len(dn_hist) and conv.nodata % 1 == 0:
        counts[NODATA] = dn_hist[int(conv.nodata)]
        dn_hist[int(conv.nodata)] = 0
    counts[NONPOSITIVE] = dn_hist[0]
    dn_hist[0] = 0
    counts[VALID] = dn_hist.sum()
    dn = np.arange(len(dn_hist), dtype=np.uint16)
    bins = db_to_bin(conv.to_db(dn[None, :], 0, 0))[0]  # integers: no non-finite values
    hist = np.bincount(bins, weights=dn_hist, minlength=HIST_BINS)
    return counts, np.rint(hist).astype(np.int64)


def _border_pixels(first: NDArray[np.int64], last: NDArray[np.int64], width: int) -> int:
    """Zeros before the first and after the last non-zero column of every row."""
    empty = first > last
    return int(np.where(empty, width, first + (width - 1 - last)).sum())


def percentile_db(hist: NDArray[np.int64], q: float) -> float:
    """The ``q``-th percentile (0..100) of a scan histogram, linear within the bin."""
    return BINS.percentile(hist, q)


def fraction_below(hist: NDArray[np.int64], db: float) -> float:
    """Share of scan-histogram mass below ``db`` (linear within the bin)."""
    return BINS.fraction_below(hist, db)


def clip_fractions(hist: NDArray[np.int64], vmin: float, vmax: float) -> dict[str, float]:
    """Shares of valid pixels clipped at each end of the window."""
    return {
        "clipped_low": round(fraction_below(hist, vmin), 6),
        "clipped_high": round(1.0 - fraction_below(hist, vmax), 6),
    }


def choose_window(
    train_hists: Sequence[NDArray[np.int64]],
    percentiles: tuple[float, float] | None,
    fixed: tuple[float, float] | None,
) -> tuple[float, float, dict[str, Any]]:
    """The dB window: fixed, or percentiles of the summed training histograms.

    Raises:
        ValueError: no valid training pixels, bad percentiles, or a degenerate window.
    """
    if fixed is not None:
        lo, hi = fixed
        info: dict[str, Any] = {"method": "fixed", "db_window": [lo, hi]}
    else:
        assert percentiles is not None
        plo, phi = percentiles
        if not 0.0 <= plo < phi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        total = np.sum(train_hists, axis=0) if train_hists else np.zeros(HIST_BINS, np.int64)
        if not total.sum():
            raise ValueError("no valid pixels in the training scenes: cannot compute the dB window")
        lo = round(percentile_db(total, plo), 3)
        hi = round(percentile_db(total, phi), 3)
        info = {
            "method": "percentiles of the training scenes' streamed histograms",
            "percentiles": [plo, phi],
            "histogram": {"lo_db": HIST_LO_DB, "hi_db": HIST_HI_DB, "bin_db": HIST_BIN_DB},
        }
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"degenerate dB window ({lo}, {hi}): the training data are constant?")
    return float(lo), float(hi), info
