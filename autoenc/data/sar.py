# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Invertible radiometric transforms for Sentinel-1 intensity images.

The network works on values in [0, 1]; these helpers map linear backscatter
intensity to a clipped dB window and back, so stored patches and decoded
outputs can always be converted to physical units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: dB window covering almost all land/water backscatter in IW GRD products.
DEFAULT_DB_WINDOW: tuple[float, float] = (-25.0, 5.0)
#: Floor applied before the log: below the IW NESZ (about -22 dB) so it never
#: clips real signal, and it keeps log10 finite for zero or invalid pixels.
DEFAULT_NOISE_FLOOR_DB: float = -30.0

#: Largest uint16 code: stored patches hold round(unit * UINT16_MAX).
UINT16_MAX = 65535.0


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


def _check_window(vmin: float, vmax: float) -> None:
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(
            f"invalid dB window: vmin_db={vmin!r} must be finite and < vmax_db={vmax!r}"
        )


def db_to_unit(db: ArrayLike, vmin: float, vmax: float) -> NDArray[np.float32]:
    """Clip dB to ``[vmin, vmax]`` and rescale linearly to ``[0, 1]``."""
    _check_window(vmin, vmax)
    d = np.clip(np.asarray(db, dtype=np.float64), vmin, vmax)
    return ((d - vmin) / (vmax - vmin)).astype(np.float32)


def unit_to_db(u: ArrayLike, vmin: float, vmax: float) -> NDArray[np.float32]:
    """Inverse of :func:`db_to_unit` (values outside [0, 1] are clipped)."""
    _check_window(vmin, vmax)
    x = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return (vmin + x * (vmax - vmin)).astype(np.float32)


def unit_to_uint16(u: ArrayLike) -> NDArray[np.uint16]:
    """Quantise unit values to uint16 (max error 1/131070) for compact storage."""
    x = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    x = np.nan_to_num(x, nan=0.0)
    return np.rint(x * UINT16_MAX).astype(np.uint16)


def uint16_to_unit(q: ArrayLike) -> NDArray[np.float32]:
    """Map stored uint16 values back to float32 in [0, 1]."""
    return (np.asarray(q, dtype=np.float32) / np.float32(UINT16_MAX)).astype(np.float32)


@dataclass(frozen=True)
class Normalisation:
    """The dB window and floor used for a dataset, kept with it for inversion."""

    vmin_db: float = DEFAULT_DB_WINDOW[0]
    vmax_db: float = DEFAULT_DB_WINDOW[1]
    noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB

    def __post_init__(self) -> None:
        _check_window(self.vmin_db, self.vmax_db)
        if not np.isfinite(self.noise_floor_db):
            raise ValueError(f"noise_floor_db must be finite, got {self.noise_floor_db!r}")

    def to_dict(self) -> dict[str, float]:
        """Serialise for the dataset manifest."""
        return {
            "vmin_db": float(self.vmin_db),
            "vmax_db": float(self.vmax_db),
            "noise_floor_db": float(self.noise_floor_db),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Build from a manifest entry; missing keys raise naming the key."""
        try:
            return cls(
                vmin_db=float(d["vmin_db"]),
                vmax_db=float(d["vmax_db"]),
                noise_floor_db=float(d.get("noise_floor_db", DEFAULT_NOISE_FLOOR_DB)),
            )
        except KeyError as e:
            raise ValueError(f"normalisation dict {d!r} lacks key {e.args[0]!r}") from None

    def forward(self, intensity: ArrayLike) -> NDArray[np.float32]:
        """Linear intensity -> unit interval."""
        return db_to_unit(
            intensity_to_db(intensity, self.noise_floor_db), self.vmin_db, self.vmax_db
        )

    def inverse(self, unit: ArrayLike) -> NDArray[np.float32]:
        """Unit interval -> linear intensity (exact within the dB window)."""
        return db_to_intensity(unit_to_db(unit, self.vmin_db, self.vmax_db))
