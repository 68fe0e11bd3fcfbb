# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Independent oracles shared by the tests (plain numpy loops, no autoenc code)."""

from __future__ import annotations

import numpy as np


def invalid_oracle(a: np.ndarray, nodata: float | None, linear: bool = True) -> np.ndarray:
    """Invalid pixels: nodata, non-finite, <= 0 (linear kinds) and each row's end zero runs."""
    x = a.astype(np.float64)
    bad = ~np.isfinite(x)
    if linear:
        bad |= x <= 0
    if nodata is not None:
        bad |= x == nodata
    for r in range(x.shape[0]):
        nz = np.flatnonzero(x[r] != 0)
        if nz.size == 0:
            bad[r] = True
        else:
            bad[r, : nz[0]] = True
            bad[r, nz[-1] + 1 :] = True
    return bad
