# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The dB window of a dataset or model, and every dB <-> unit <-> uint16 code conversion.

The network works on unit values in [0, 1]: ``unit = (db - vmin_db) / W`` with
``W = vmax_db - vmin_db``, clipped; stored patches and galleries hold uint16 codes
``q = rint(unit * 65535)``. :class:`Normalisation` is the only place these formulas live.

Invariants (``n`` a :class:`Normalisation`, ``W`` its width; float32 arithmetic where stated,
so they hold while ``max(|vmin_db|, |vmax_db|) / W`` stays under about 100):
    * ``n.from_unit(n.to_unit(db)) == db`` inside the window (to float32 precision); outside it
      ``to_unit`` clips to 0 or 1, so the result is the nearer window edge;
    * ``n.to_codes(n.from_codes(q)) == q`` for every uint16 code ``q``;
    * ``|n.from_codes(n.to_codes(db)) - db| <= W / 131070`` (half a code step, plus float32
      rounding) inside the window;
    * :func:`codes_from_unit` and :func:`unit_from_codes` are the same maps without a window:
      ``codes_from_unit(unit_from_codes(q)) == q``; NaN units map to code 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autoenc.sar.radiometry import DEFAULT_NOISE_FLOOR_DB, db_to_intensity, intensity_to_db

__all__ = [
    "CODE_MAX",
    "DEFAULT_DB_WINDOW",
    "DEFAULT_NOISE_FLOOR_DB",
    "Normalisation",
    "check_window",
    "codes_from_unit",
    "unit_from_codes",
]

#: dB window covering almost all land/water backscatter in IW GRD products.
DEFAULT_DB_WINDOW: tuple[float, float] = (-25.0, 5.0)

#: Largest uint16 code: codes are ``rint(unit * CODE_MAX)``, units ``code / CODE_MAX``.
CODE_MAX = 65535.0


def check_window(vmin: float, vmax: float) -> None:
    """Refuse a window that is not finite with ``vmin < vmax``.

    Raises:
        ValueError: naming both ends.
    """
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(
            f"invalid dB window: vmin_db={vmin!r} must be finite and < vmax_db={vmax!r}"
        )


def codes_from_unit(unit: ArrayLike) -> NDArray[np.uint16]:
    """Unit values -> uint16 codes ``rint(clip(unit, 0, 1) * 65535)`` (float64; NaN -> 0)."""
    x = np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0)
    x = np.nan_to_num(x, nan=0.0)
    return np.rint(x * CODE_MAX).astype(np.uint16)


def unit_from_codes(codes: ArrayLike) -> NDArray[np.float32]:
    """Uint16 codes -> float32 unit values ``q / 65535`` in [0, 1]."""
    return (np.asarray(codes, dtype=np.float32) / np.float32(CODE_MAX)).astype(np.float32)


@dataclass(frozen=True)
class Normalisation:
    """The dB window and floor used for a dataset, kept with it for inversion."""

    vmin_db: float = DEFAULT_DB_WINDOW[0]
    vmax_db: float = DEFAULT_DB_WINDOW[1]
    noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB

    def __post_init__(self) -> None:
        check_window(self.vmin_db, self.vmax_db)
        if not np.isfinite(self.noise_floor_db):
            raise ValueError(f"noise_floor_db must be finite, got {self.noise_floor_db!r}")

    @property
    def window(self) -> tuple[float, float]:
        """``(vmin_db, vmax_db)``."""
        return float(self.vmin_db), float(self.vmax_db)

    def to_dict(self) -> dict[str, float]:
        """Serialise for the dataset manifest."""
        return {
            "vmin_db": float(self.vmin_db),
            "vmax_db": float(self.vmax_db),
            "noise_floor_db": float(self.noise_floor_db),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Build from a manifest entry (``noise_floor_db`` optional).

        Raises:
            ValueError: naming a missing ``vmin_db`` or ``vmax_db``, or an invalid window.
        """
        try:
            return cls(
                vmin_db=float(d["vmin_db"]),
                vmax_db=float(d["vmax_db"]),
                noise_floor_db=float(d.get("noise_floor_db", DEFAULT_NOISE_FLOOR_DB)),
            )
        except KeyError as e:
            raise ValueError(f"normalisation dict {d!r} lacks key {e.args[0]!r}") from None

    def to_unit(self, db: ArrayLike) -> NDArray[np.float32]:
        """DB -> float32 unit values, clipped to [0, 1] (float32 arithmetic)."""
        d = np.asarray(db, dtype=np.float32)
        lo, width = np.float32(self.vmin_db), np.float32(self.vmax_db - self.vmin_db)
        return np.clip((d - lo) / width, 0.0, 1.0).astype(np.float32)

    def from_unit(self, unit: ArrayLike) -> NDArray[np.float64]:
        """Unit values (clipped to [0, 1]) -> float64 dB inside the window."""
        x = np.clip(np.asarray(unit), 0.0, 1.0).astype(np.float64)
        return self.vmin_db + x * (self.vmax_db - self.vmin_db)

    def to_codes(self, db: ArrayLike) -> NDArray[np.uint16]:
        """DB -> uint16 codes ``rint(clip(unit) * 65535)`` in one float32 pass.

        The same codes as ``to_unit`` then :func:`codes_from_unit` but for the rare pixel whose
        float32 rounding straddles a half code (then one code apart); NaN -> 0.
        """
        scale = np.float32(CODE_MAX / (self.vmax_db - self.vmin_db))
        u = (np.asarray(db, dtype=np.float32) - np.float32(self.vmin_db)) * scale
        np.clip(u, 0.0, np.float32(CODE_MAX), out=u)
        np.nan_to_num(u, copy=False, nan=0.0)
        return np.rint(u, out=u).astype(np.uint16)

    def from_codes(self, codes: ArrayLike) -> NDArray[np.float64]:
        """Uint16 codes -> float64 dB (``q / 65535`` mapped into the window)."""
        return self.from_unit(unit_from_codes(codes))

    def forward(self, intensity: ArrayLike) -> NDArray[np.float32]:
        """Linear intensity -> unit interval."""
        return self.to_unit(intensity_to_db(intensity, self.noise_floor_db))

    def inverse(self, unit: ArrayLike) -> NDArray[np.float32]:
        """Unit interval -> linear intensity (exact within the dB window)."""
        return db_to_intensity(self.from_unit(unit))
