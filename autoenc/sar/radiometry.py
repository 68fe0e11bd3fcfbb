# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Linear backscatter intensity <-> dB, and which pixels are usable.

Invariants:
    * :func:`intensity_to_db` is finite everywhere: invalid pixels (NaN, Inf, <= 0) and values
      under the noise floor become ``noise_floor_db``;
    * :func:`db_to_intensity` inverts it above the floor (to float32 precision).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Floor applied before the log: below the IW NESZ (about -22 dB) so it never
#: clips real signal, and it keeps log10 finite for zero or invalid pixels.
DEFAULT_NOISE_FLOOR_DB: float = -30.0


def valid_mask(i: ArrayLike) -> NDArray[np.bool_]:
    """Return True where intensity is usable (finite and strictly positive)."""
    a = np.asarray(i)
    with np.errstate(invalid="ignore"):
        return np.isfinite(a) & (a > 0)


def intensity_to_db(
    i: ArrayLike, noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB
) -> NDArray[np.float32]:
    """Convert linear intensity to dB, mapping invalid values to the floor.

    Non-positive, NaN and Inf pixels become ``noise_floor_db`` so downstream
    code never sees non-finite numbers; use :func:`valid_mask` to flag them.
    """
    a = np.asarray(i, dtype=np.float64)
    floor = 10.0 ** (noise_floor_db / 10.0)
    safe = np.where(valid_mask(a), a, floor)
    return (10.0 * np.log10(np.maximum(safe, floor))).astype(np.float32)


def db_to_intensity(db: ArrayLike) -> NDArray[np.float32]:
    """Convert dB back to linear intensity."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0).astype(np.float32)
