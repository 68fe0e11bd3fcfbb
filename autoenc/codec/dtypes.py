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


def cast(values: NDArray[np.floating], dtype: np.dtype[Any], positive: bool) -> NDArray[Any]:
    """Float values -> ``dtype``; integers rounded and clipped, never wrapped."""
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


def work_dtype(sh: SceneHeader) -> np.dtype[Any]:
    """The float dtype the decoder maps dB to values in: float32 for float32 bands, else float64.

    A float32 band loses nothing to float32 maths (1e-6 relative, below the codec's error by
    orders of magnitude) and decodes its radiometry about 10x faster; integer bands keep
    float64, so their rounding to DN stays exact.
    """
    dtype = np.dtype(sh.input.dtype)
    return np.dtype(np.float32 if dtype.kind == "f" and dtype.itemsize <= 4 else np.float64)


def window_db(unit: NDArray[np.float32], sh: SceneHeader) -> NDArray[np.floating]:
    """Decoded window values in [0, 1] -> the model's dB inside the header's window.

    Computed in :func:`work_dtype`.
    """
    return sh.normalisation.from_unit(unit, work_dtype(sh))


def from_db(db: NDArray[np.floating], sh: SceneHeader, y: int, x: int) -> NDArray[Any]:
    """The model's dB of a tile at ``(y, x)`` -> the input's units and dtype.

    The inverse of the compressor's preprocessing: the per-scene offset, then
    :meth:`autoenc.sar.radiometry.BlockConverter.from_db` (input kind and calibration), in
    ``db``'s dtype (:func:`work_dtype` from :func:`window_db`).
    """
    inp = sh.input
    values = inp.converter.from_db(inp.offset.undo(db), y, x)
    return cast(values, inp.dtype, positive=inp.kind != "db")


def from_units(unit: NDArray[np.float32], sh: SceneHeader, y: int, x: int) -> NDArray[Any]:
    """Decoded window values in [0, 1] -> the input's units and dtype (tile at ``(y, x)``)."""
    return from_db(window_db(unit, sh), sh, y, x)
