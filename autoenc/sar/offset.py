# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The per-scene gain: a dB offset that maps a scene into a model's training range.

Intensity products of one sensor differ from each other by a constant factor (σ⁰ or β⁰,
uncalibrated ``|DN|²``, a processor's scaling), which in dB is a constant offset; speckle is
multiplicative, so in dB it looks the same at every level. The codec therefore adds
``offset_db`` to a scene's dB values before the model's window and subtracts it after
decoding: one model serves every such product, and the ``.aec`` header carries the offset.

``--offset-db`` chooses it (:func:`choose_offset`), from one streaming pass over the scene
(:func:`scene_levels`, a 0.01 dB histogram of the valid pixels):

* ``auto`` (default): the offset that puts the most valid pixels inside the model's window,
  i.e. the fewest in the exception layer; 0 when 0 does within 0.1 % of that (a calibrated σ⁰
  scene that fits keeps its levels), else the middle of the best run of offsets (about -50 dB
  for uncalibrated ``|DN|²``, about +18 dB for calm VH sea at -28 dB);
* ``median``: the offset that moves the scene's median to the window's centre;
* a number: that offset in dB (``0`` keeps the scene's own levels).

Invariants:
    * :meth:`DbOffset.undo` inverts :meth:`DbOffset.apply` (up to rounding);
    * estimated offsets are multiples of :data:`OFFSET_STEP_DB` and, like given ones, within
      ``±OFFSET_LIMIT_DB``; the same scene and window always give the same offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from autoenc.sar.histogram import DbBins
from autoenc.sar.radiometry import VALID, BlockConverter

if TYPE_CHECKING:  # rasterio only where scenes are read
    from autoenc.sar.geotiff import SceneReader

#: Estimated offsets are rounded to this step (so headers and reruns are stable).
OFFSET_STEP_DB = 0.01
#: Largest offset, given or estimated (|dB|): 1e-20 .. 1e20 in intensity.
OFFSET_LIMIT_DB = 200.0
#: Bins of the levels pass: 0.01 dB over ±(limit + 100) dB.
LEVEL_BINS = DbBins(-(OFFSET_LIMIT_DB + 100.0), OFFSET_LIMIT_DB + 100.0)
OFFSET_MODES = ("auto", "median")
#: ``auto`` keeps offset 0 unless another puts this share more of the valid pixels inside.
AUTO_TOLERANCE = 0.001


@dataclass(frozen=True)
class DbOffset:
    """``offset_db`` added to a scene's dB on the way in and subtracted on the way out.

    ``reason`` says how it was chosen (shown by ``compress`` and kept in ``STAT``).
    """

    offset_db: float = 0.0
    reason: str = "none"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.offset_db) and abs(self.offset_db) <= OFFSET_LIMIT_DB):
            raise ValueError(
                f"--offset-db {self.offset_db!r} must be finite and within ±{OFFSET_LIMIT_DB:g} dB"
            )

    def apply(self, db: NDArray[np.float32]) -> NDArray[np.float32]:
        """The scene's dB -> the model's dB (float32, as the converter produces)."""
        if self.offset_db == 0.0:
            return db
        return (db + np.float32(self.offset_db)).astype(np.float32)

    def undo(self, db: NDArray[np.floating]) -> NDArray[np.floating]:
        """The model's dB -> the scene's dB, in ``db``'s float dtype (the decoder's choice)."""
        if self.offset_db == 0.0:
            return db
        if np.asarray(db).dtype == np.float32:
            return db - np.float32(self.offset_db)
        return np.asarray(db, dtype=np.float64) - self.offset_db

    def input_floor(self, noise_floor_db: float) -> float:
        """The model's noise floor in the scene's own dB (what the converter clamps at)."""
        return float(noise_floor_db) - self.offset_db


def parse_offset(spec: str | float) -> str | float:
    """``--offset-db``: ``auto``, ``median`` or a number of dB.

    Raises:
        ValueError: naming the value and the accepted forms.
    """
    if isinstance(spec, (int, float)):
        DbOffset(float(spec))
        return float(spec)
    text = str(spec).strip().lower()
    if text in OFFSET_MODES:
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"--offset-db {spec!r}: expected 'auto', 'median' or a number of dB"
        ) from None
    DbOffset(value)  # range check
    return value


@dataclass(frozen=True)
class SceneLevels:
    """The histogram of a scene's valid dB values over :data:`LEVEL_BINS` (0.01 dB, ±300 dB).

    ``hist[k]`` counts values in ``[lo + k·bin, lo + (k+1)·bin)``; values beyond the range are
    counted in the end bins.
    """

    hist: NDArray[np.int64]

    @property
    def n(self) -> int:
        """Number of valid pixels."""
        return int(self.hist.sum())

    def median_db(self) -> float:
        """Median dB (linear within its bin; NaN without a valid pixel)."""
        return LEVEL_BINS.percentile(self.hist, 50.0) if self.n else math.nan

    def coverage(self, window: tuple[float, float]) -> NDArray[np.int64]:
        """Valid pixels inside ``window`` after each offset of :meth:`offsets` (same order)."""
        c = np.concatenate([[0], np.cumsum(self.hist)])
        w = round((window[1] - window[0]) / LEVEL_BINS.width)
        return c[w:] - c[:-w]

    def offsets(self, window: tuple[float, float]) -> NDArray[np.float64]:
        """The offset that puts bin ``k`` at the window's bottom, for every ``k``."""
        w = round((window[1] - window[0]) / LEVEL_BINS.width)
        k = np.arange(LEVEL_BINS.n - w + 1)
        return np.round(window[0] - (LEVEL_BINS.lo + k * LEVEL_BINS.width), 6)


def scene_levels(
    reader: SceneReader,
    conv: BlockConverter,
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    block_rows: int = 256,
) -> SceneLevels:
    """Stream a scene once for its :class:`SceneLevels`.

    Values are taken with the floor lowered to the histogram's bottom, so a scene far below
    the model's noise floor is measured rather than clamped.
    """
    low = BlockConverter(conv.kind, conv.nodata, LEVEL_BINS.lo, conv.calibration)
    hist = np.zeros(LEVEL_BINS.n, dtype=np.int64)
    from autoenc.sar.geotiff import blocks

    for r, c, bh, bw in blocks(reader.height, reader.width, block_rows, reader.width):
        raw = reader.read(r, c, bh, bw)
        valid = low.reasons(raw, first[r : r + bh], last[r : r + bh], c) == VALID
        hist += np.bincount(LEVEL_BINS.index(low.to_db(raw, r, c)[valid]), minlength=LEVEL_BINS.n)
    return SceneLevels(hist)


def choose_offset(mode: str | float, levels: SceneLevels | None,
                  window: tuple[float, float]) -> DbOffset:  # fmt: skip
    """The offset for ``--offset-db mode``, given the scene's levels and the model's window.

    ``auto``: the offset that puts the most valid pixels inside the window (fewest exceptions),
    0 when 0 is within :data:`AUTO_TOLERANCE` of the best, else the middle of the best run of
    offsets; ``median``: the median to the window's centre; a number: that.

    Raises:
        ValueError: the estimate is out of range (the scene is not SAR intensity in any unit
            the limits allow).
    """
    lo, hi = window
    if not isinstance(mode, str):
        return DbOffset(float(mode), f"given: {float(mode):+g} dB")
    if mode not in OFFSET_MODES:
        raise ValueError(f"--offset-db {mode!r}: expected 'auto', 'median' or a number of dB")
    if levels is None or levels.n == 0:
        return DbOffset(0.0, "no valid pixel to estimate from")
    median = levels.median_db()
    if mode == "median":
        est = round(round(((lo + hi) / 2 - median) / OFFSET_STEP_DB) * OFFSET_STEP_DB, 6)
        why = f"median: scene median {median:.2f} dB moved to the window's centre"
    else:
        cover, offs = levels.coverage(window), levels.offsets(window)
        allowed = np.abs(offs) <= OFFSET_LIMIT_DB
        cover = np.where(allowed, cover, -1)
        best = int(cover.max())
        at_zero = int(cover[np.argmin(np.abs(offs))])
        if at_zero >= best - AUTO_TOLERANCE * levels.n:
            share = at_zero / levels.n
            return DbOffset(0.0, f"auto: {share:.2%} of the valid pixels inside the window as is")
        k = int(np.argmax(cover))
        end = k + int(np.argmin(cover[k:] == best)) if (cover[k:] != best).any() else len(cover)
        est = float(offs[(k + end - 1) // 2])  # the middle of the best run
        why = (f"auto: {best / levels.n:.2%} of the valid pixels inside the window (not "
               f"{at_zero / levels.n:.2%} as is; median {median:.2f} dB)")  # fmt: skip
    if abs(est) > OFFSET_LIMIT_DB:
        raise ValueError(
            f"the scene's median is {median:.1f} dB: an offset of {est:+.1f} dB to the "
            f"window's centre exceeds ±{OFFSET_LIMIT_DB:g} dB (wrong --input-kind?)"
        )
    return DbOffset(est, why)
