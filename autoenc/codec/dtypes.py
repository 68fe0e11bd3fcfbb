# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Scene dtypes of the codec: which are coded, and decoded values back in the input's dtype.

One table, :data:`autoenc.sar.geotiff.RASTER_DTYPES`, decides which band dtypes exist for the codec:
``compress`` refuses the others (:func:`check_scene_dtype`), the header reader refuses them
(:mod:`autoenc.codec.header`) and the GeoTIFF writer refuses them, so a file that compresses
always decompresses. Complex bands (SLC) must be detected (``|z|``) first; float16 has no
GeoTIFF type in this GDAL.

Invariants:
    * :func:`cast` never wraps around: integers are rounded and clipped to the dtype's range
      (valid amplitude and intensity pixels to at least 1, since 0 marks invalid ones);
    * :func:`from_units` returns finite values for finite input (the header's window and
      calibration are range-checked before it runs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.codec.header import SceneHeader
from autoenc.sar.geotiff import RASTER_DTYPES


def check_scene_dtype(dtype: np.dtype[Any], source: str) -> None:
    """Refuse a band dtype the decoder could not restore.

    Raises:
        ValueError: naming the dtype and the supported ones.
    """
    if np.dtype(dtype).name not in RASTER_DTYPES:
        raise ValueError(
            f"{source}: band dtype {np.dtype(dtype).name} cannot be compressed; supported: "
            f"{', '.join(RASTER_DTYPES)} (detect complex SLC data, |z|, first)"
        )


def cast(values: NDArray[np.float64], dtype: np.dtype[Any], positive: bool) -> NDArray[Any]:
    """Float64 values -> ``dtype``; integers rounded and clipped, never wrapped."""
    if dtype.kind not in "iu":
        if dtype.itemsize < 8:  # float32: clip rather than overflow to inf
            big = float(np.finfo(dtype).max)
            values = np.clip(values, -big, big)
        return values.astype(dtype)
    info = np.iinfo(dtype)
    lo = max(1, int(info.min)) if positive else int(info.min)
    hi = float(info.max)
    if int(hi) > info.max:  # 2**63 - 1 and 2**64 - 1 round up in float64
        hi = float(np.nextafter(hi, 0.0))
    return np.clip(np.rint(values), float(lo), hi).astype(dtype)


def window_db(unit: NDArray[np.float32], sh: SceneHeader) -> NDArray[np.float64]:
    """Decoded window values in [0, 1] -> the model's dB inside the header's window."""
    return sh.normalisation.from_unit(unit)


def from_db(db: NDArray[np.float64], sh: SceneHeader, y: int, x: int) -> NDArray[Any]:
    """The model's dB of a tile at ``(y, x)`` -> the input's units and dtype.

    The inverse of the compressor's preprocessing: the per-scene offset, then
    :meth:`autoenc.sar.radiometry.BlockConverter.from_db` (input kind and calibration).
    """
    inp = sh.input
    values = inp.converter.from_db(inp.offset.undo(db), y, x)
    return cast(values, inp.dtype, positive=inp.kind != "db")


def from_units(unit: NDArray[np.float32], sh: SceneHeader, y: int, x: int) -> NDArray[Any]:
    """Decoded window values in [0, 1] -> the input's units and dtype (tile at ``(y, x)``)."""
    return from_db(window_db(unit, sh), sh, y, x)
