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
      ``codes_from_unit(unit_from_codes(q)) == q``; NaN units map to code 0;
    * ``n.from_unit(a) - n.from_unit(b) == n.width_db * (a - b)`` for ``a, b`` in [0, 1] (up to
      rounding): unit-window errors (RMSE, bias) scale to dB by ``width_db``.

Arrays or tensors: :meth:`Normalisation.to_unit`, :meth:`~Normalisation.from_unit`,
:meth:`~Normalisation.from_codes`, :meth:`~Normalisation.inverse` and :func:`unit_from_codes`
also take a ``torch.Tensor`` and return one on its device, computed in its dtype (a
non-floating tensor as float32): the same formulas, so the metrics and the data loader share
them, equal to the numpy results to float32 rounding (tests/test_normalisation.py). This module
never imports torch (see :mod:`autoenc.sar.arrays`). Codes are written by numpy code only:
:meth:`~Normalisation.to_codes`, :func:`codes_from_unit` and :meth:`~Normalisation.forward`
take arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autoenc.sar.arrays import is_tensor
from autoenc.sar.radiometry import DEFAULT_NOISE_FLOOR_DB, db_to_intensity, intensity_to_db

if TYPE_CHECKING:  # torch only where the caller has it
    from torch import Tensor

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


@overload
def unit_from_codes(codes: Tensor) -> Tensor: ...
@overload
def unit_from_codes(codes: ArrayLike) -> NDArray[np.float32]: ...
def unit_from_codes(codes: ArrayLike | Tensor) -> NDArray[np.float32] | Tensor:
    """Uint16 codes -> float32 unit values ``q / 65535`` in [0, 1].

    A tensor (of any dtype: uint16, or int32 where torch lacks a uint16 kernel) gives a float32
    tensor on its device; the input is never modified.
    """
    if is_tensor(codes):
        unit = codes.float()  # (...) float32: a new tensor unless codes already were float32
        return unit / CODE_MAX if unit is codes else unit.div_(CODE_MAX)
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

    @property
    def width_db(self) -> float:
        """``W = vmax_db - vmin_db``: dB per unit, so a unit-window error times ``W`` is in dB."""
        return float(self.vmax_db - self.vmin_db)

    @classmethod
    def from_window(cls, window_db: Normalisation | Iterable[float]) -> Normalisation:
        """The record of a ``(vmin_db, vmax_db)`` pair (default noise floor); a record as is.

        For APIs that take the window as a pair (the metrics): convert once, at the boundary.

        Raises:
            ValueError: naming ``window_db`` when it is not two numbers or not a valid window.
        """
        if isinstance(window_db, Normalisation):
            return window_db
        try:
            vmin, vmax = (float(v) for v in window_db)
        except (TypeError, ValueError):
            raise ValueError(f"window_db must be (vmin_db, vmax_db), got {window_db!r}") from None
        try:
            return cls(vmin, vmax)
        except ValueError as e:
            raise ValueError(f"window_db {window_db!r}: {e}") from None

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

    @overload
    def to_unit(self, db: Tensor) -> Tensor: ...
    @overload
    def to_unit(self, db: ArrayLike) -> NDArray[np.float32]: ...
    def to_unit(self, db: ArrayLike | Tensor) -> NDArray[np.float32] | Tensor:
        """DB -> float32 unit values, clipped to [0, 1] (float32 arithmetic).

        A tensor gives a tensor, computed in its floating dtype (others as float32).
        """
        if is_tensor(db):
            t = db if db.is_floating_point() else db.float()
            return (t - self.vmin_db).div_(self.width_db).clamp_(0.0, 1.0)
        d = np.asarray(db, dtype=np.float32)
        lo, width = np.float32(self.vmin_db), np.float32(self.width_db)
        return np.clip((d - lo) / width, 0.0, 1.0).astype(np.float32)

    @overload
    def from_unit(self, unit: Tensor, dtype: Any = ...) -> Tensor: ...
    @overload
    def from_unit(self, unit: ArrayLike) -> NDArray[np.float64]: ...
    @overload
    def from_unit(self, unit: ArrayLike, dtype: Any) -> NDArray[np.floating]: ...
    def from_unit(
        self, unit: ArrayLike | Tensor, dtype: Any = np.float64
    ) -> NDArray[np.floating] | Tensor:
        """Unit values (clipped to [0, 1]) -> dB inside the window, numpy in ``dtype`` (float64).

        A tensor gives a new tensor in its floating dtype (others as float32): pass a float64
        tensor for float64 dB, as the metrics do. ``dtype=np.float32`` computes in float32 (the
        decoder's choice for float32 bands, :func:`autoenc.codec.dtypes.work_dtype`).
        """
        if is_tensor(unit):
            t = unit if unit.is_floating_point() else unit.float()
            return t.clamp(0.0, 1.0).mul_(self.width_db).add_(self.vmin_db)
        kind = np.dtype(dtype).type
        x = np.clip(np.asarray(unit), 0.0, 1.0).astype(kind)
        return kind(self.vmin_db) + x * kind(self.width_db)

    def to_codes(self, db: ArrayLike) -> NDArray[np.uint16]:
        """DB -> uint16 codes ``rint(clip(unit) * 65535)`` in one float32 pass.

        The same codes as ``to_unit`` then :func:`codes_from_unit` but for the rare pixel whose
        float32 rounding straddles a half code (then one code apart); NaN -> 0.
        """
        scale = np.float32(CODE_MAX / self.width_db)
        u = (np.asarray(db, dtype=np.float32) - np.float32(self.vmin_db)) * scale
        np.clip(u, 0.0, np.float32(CODE_MAX), out=u)
        np.nan_to_num(u, copy=False, nan=0.0)
        return np.rint(u, out=u).astype(np.uint16)

    @overload
    def from_codes(self, codes: Tensor) -> Tensor: ...
    @overload
    def from_codes(self, codes: ArrayLike) -> NDArray[np.float64]: ...
    def from_codes(self, codes: ArrayLike | Tensor) -> NDArray[np.float64] | Tensor:
        """Uint16 codes -> float64 dB (``q / 65535`` mapped into the window); tensors: float32."""
        return self.from_unit(unit_from_codes(codes))

    def forward(self, intensity: ArrayLike) -> NDArray[np.float32]:
        """Linear intensity -> unit interval."""
        return self.to_unit(intensity_to_db(intensity, self.noise_floor_db))

    @overload
    def inverse(self, unit: Tensor) -> Tensor: ...
    @overload
    def inverse(self, unit: ArrayLike) -> NDArray[np.float32]: ...
    def inverse(self, unit: ArrayLike | Tensor) -> NDArray[np.float32] | Tensor:
        """Unit interval -> linear intensity (exact within the dB window).

        Arrays give float32; a tensor gives a tensor in its floating dtype (the metrics pass
        float64, since block variances subtract nearly equal sums).
        """
        if is_tensor(unit):
            return db_to_intensity(self.from_unit(unit), inplace=True)  # on from_unit's new tensor
        return db_to_intensity(self.from_unit(unit))
