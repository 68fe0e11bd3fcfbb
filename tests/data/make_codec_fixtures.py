# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded generator of the GeoTIFF scenes for the ``autoenc compress/decompress`` tests.

Written with rasterio directly (not autoenc's writer), so the codec's reader and writer are
tested against an independent implementation. Run ``python tests/data/make_codec_fixtures.py
OUT`` to inspect them.

Files (height x width; only ``small.tif`` is a multiple of 16):

* ``sigma0.tif`` (150 x 200): float32 linear σ⁰, CRS + transform, band described ``VV``,
  nodata tag -9999 at some pixels, NaN holes and an untagged zero border.
* ``grd_dn.tif`` (150 x 200): uint16 amplitude DN = sqrt(σ⁰)·500 (``--calibration 500``),
  GCPs only, band described ``VV``, an untagged zero border, no nodata tag.
* ``small.tif`` (48 x 48): float32 linear σ⁰, CRS + transform, one 64-px tile, a multiple of
  16 (so the network input is the scene itself, with no padding); no invalid pixels.
* ``large.tif`` (330 x 300): float32 linear σ⁰, CRS + transform, for tiled-vs-whole checks.

Content: water (-21 dB) and urban (-3 dB) land cover, as in the tiny training scenes, with the
tiny scenes' speckle (IW GRDH from autoenc's imaging chain: 4.4 looks, spatially correlated;
a model trained on it fails on white speckle, so the fixtures must share it): two halves, or
(``large.tif``) a mosaic of 48-px squares.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from autoenc.data.speckle import PRODUCTS, chain_speckle

SEED = 23
#: Calibration constant of ``grd_dn.tif``: σ⁰ = DN² / A².
CAL_A = 500.0
NODATA = -9999.0
SHAPES = {"sigma0": (150, 200), "grd_dn": (150, 200), "small": (48, 48), "large": (330, 300)}
_UTM = CRS.from_epsg(32633)
_TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0)


def _sigma0(shape: tuple[int, int], rng: np.random.Generator, block: int = 0) -> np.ndarray:
    """Linear σ⁰ with IW GRDH speckle over water (-21 dB) and urban (-3 dB) land cover.

    ``block=0``: water on the left half, urban on the right (the tiny training scenes are each
    one homogeneous land cover, so the tiny models reproduce large regions best); otherwise a
    random mosaic of ``block``-px squares of either.
    """
    h, w = shape
    if block:
        cells = rng.choice([-21.0, -3.0], (-(-h // block), -(-w // block)))
        refl_db = np.repeat(np.repeat(cells, block, 0), block, 1)[:h, :w]
    else:
        refl_db = np.where(np.arange(w)[None, :] < w // 2, -21.0, -3.0) * np.ones((h, 1))
    return chain_speckle((10 ** (refl_db / 10)).astype(np.float32), PRODUCTS["grdh"], rng)


def zero_border(a: np.ndarray) -> None:
    """Slanted left border (2..9 px), a 3 px right border and one all-zero bottom row."""
    h, w = a.shape
    for r in range(h):
        a[r, : 2 + (7 * r) // h] = 0
        a[r, w - 3 :] = 0
    a[h - 1, :] = 0


def _write_float(path: Path, a: np.ndarray, nodata: float | None = None) -> None:
    h, w = a.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=h, width=w, count=1, dtype="float32",
        crs=_UTM, transform=_TRANSFORM, nodata=nodata,
    ) as f:  # fmt: skip
        f.write(a, 1)
        f.set_band_description(1, "VV")


def make_codec_fixtures(out: Path) -> dict[str, Path]:
    """Write every fixture under ``out``; returns name -> path."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.tif" for name in SHAPES}

    s0 = _sigma0(SHAPES["sigma0"], rng)
    s0[20:24, 40:45] = np.nan
    s0[100, 120] = np.nan
    s0[60:63, 150:160] = NODATA
    s0[130, 30:33] = NODATA
    zero_border(s0)
    _write_float(paths["sigma0"], s0, nodata=NODATA)

    h, w = SHAPES["grd_dn"]
    dn = np.clip(np.rint(np.sqrt(_sigma0((h, w), rng)) * CAL_A), 1, 65535).astype(np.uint16)
    zero_border(dn)
    gcps = [
        GroundControlPoint(row=r, col=c, x=10.0 + c * 1e-4, y=45.0 - r * 1e-4, z=0.0, id=f"{i}")
        for i, (r, c) in enumerate([(0, 0), (0, w), (h, 0), (h, w)])
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GCPs are set just below
        f = rasterio.open(
            paths["grd_dn"], "w", driver="GTiff", height=h, width=w, count=1, dtype="uint16"
        )
    with f:
        f.write(dn, 1)
        f.gcps = (gcps, CRS.from_epsg(4326))
        f.set_band_description(1, "VV")

    _write_float(paths["small"], _sigma0(SHAPES["small"], rng))
    _write_float(paths["large"], _sigma0(SHAPES["large"], rng, block=48))
    return paths


if __name__ == "__main__":
    for name, path in make_codec_fixtures(Path(sys.argv[1])).items():
        print(name, path)
