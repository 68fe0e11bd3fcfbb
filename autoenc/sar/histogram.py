# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Fixed-bin dB histograms: how prepare's first pass and the codec's offset pass see a scene.

A :class:`DbBins` record names the bins (``width`` dB each over ``[lo, hi)``); a histogram is an
int64 array of ``n`` counts. Prepare sums its scenes' histograms over ±100 dB to choose the dB
window (:mod:`autoenc.data.scan`); ``compress`` measures one scene over ±300 dB to choose its
offset (:mod:`autoenc.sar.offset`).

Invariants:
    * :meth:`DbBins.index` puts every value in a bin, values beyond the range in the end bins;
    * :meth:`DbBins.percentile` is monotone in ``q`` and linear within a bin;
    * ``fraction_below(hist, hi) == 1`` and ``fraction_below(hist, lo) == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class DbBins:
    """Bins of ``width`` dB over ``[lo, hi)``."""

    lo: float
    hi: float
    width: float = 0.01

    @property
    def n(self) -> int:
        """Number of bins."""
        return round((self.hi - self.lo) / self.width)

    def index(self, db: NDArray[np.floating]) -> NDArray[np.intp]:
        """The bin of each dB value (float32 arithmetic; beyond the range: the end bins)."""
        idx = (np.asarray(db, np.float32) - np.float32(self.lo)) * np.float32(1.0 / self.width)
        return np.clip(idx, 0, self.n - 1).astype(np.intp)

    def percentile(self, hist: NDArray[np.int64], q: float) -> float:
        """The ``q``-th percentile (0..100) of a histogram, linear within the bin.

        Raises:
            ValueError: an empty histogram.
        """
        total = int(hist.sum())
        if total == 0:
            raise ValueError("cannot take percentiles of an empty histogram (no valid pixels)")
        target = total * q / 100.0
        cum = np.cumsum(hist)
        i = min(int(np.searchsorted(cum, target, side="left")), self.n - 1)
        before = float(cum[i - 1]) if i > 0 else 0.0
        frac = (target - before) / float(hist[i]) if hist[i] else 0.0
        return self.lo + self.width * (i + min(max(frac, 0.0), 1.0))

    def fraction_below(self, hist: NDArray[np.int64], db: float) -> float:
        """Share of the histogram's mass below ``db`` (linear within the bin)."""
        total = int(hist.sum())
        if total == 0:
            return 0.0
        x = (db - self.lo) / self.width
        i = int(np.clip(np.floor(x), 0, self.n - 1))
        below = float(hist[:i].sum()) + float(hist[i]) * float(np.clip(x - i, 0.0, 1.0))
        return below / total
