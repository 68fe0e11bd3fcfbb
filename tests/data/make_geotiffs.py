# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded generator of the tiny GeoTIFF fixtures for ``autoenc prepare`` tests.

Written with rasterio directly (not autoenc's writer), so the reader is tested against an
independent writer. Run ``python tests/data/make_geotiffs.py OUT`` to inspect them.

Files (all 80 x 72 px unless noted):

* ``SAFE/measurement/s1a-iw-grd-vv-tiny.tiff``: uint16 amplitude DN, GCPs only, untagged zero
  border, plus ``SAFE/annotation/calibration/calibration-s1a-iw-grd-vv-tiny.xml``.
* ``sigma0_crs.tif``: float32 linear σ⁰, CRS + transform, nodata tag -9999 (some pixels),
  NaN, ±Inf, negative and zero pixels, an untagged zero border, no unit metadata.
* ``db.tif``: float32 dB with unit "dB", NaN holes and an untagged zero border.
* ``dual.tif``: two float32 bands described VV and VH, CRS + transform.
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

H, W = 80, 72
SEED = 11
#: Calibration constant of the tiny GRD: sigma0 = DN^2 / A^2 with A varying by pixel.
A_NEAR, A_FAR = 400.0, 600.0


def _sigma0(rng: np.random.Generator) -> np.ndarray:
    """Blocky reflectivity with Gamma speckle, in linear σ⁰ (about -20..0 dB)."""
    refl_db = np.repeat(np.repeat(rng.uniform(-20, 0, (H // 8, W // 8)), 8, 0), 8, 1)
    return (10 ** (refl_db / 10) * rng.gamma(4.4, 1 / 4.4, (H, W))).astype(np.float32)


def _zero_border(a: np.ndarray) -> None:
    """Slanted left border (3..8 px), a 2 px right border and one all-zero top row."""
    for r in range(H):
        a[r, : 3 + (5 * r) // H] = 0
        a[r, W - 2 :] = 0
    a[0, :] = 0


def _calibration_xml(path: Path) -> None:
    lines = [0, 40, 79]
    pixels = [0, 36, 71]
    vecs = []
    for line in lines:
        vals = " ".join(f"{A_NEAR + (A_FAR - A_NEAR) * p / 71:.3f}" for p in pixels)
        vecs.append(
            f'<calibrationVector><line>{line}</line><pixel count="3">'
            f'{" ".join(map(str, pixels))}</pixel><sigmaNought count="3">{vals}</sigmaNought>'
            f'<betaNought count="3">{vals}</betaNought><gamma count="3">{vals}</gamma>'
            "</calibrationVector>"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0"?><calibration><calibrationVectorList count="3">'
        + "".join(vecs)
        + "</calibrationVectorList></calibration>\n"
    )


def calibration_a() -> np.ndarray:
    """The A of every pixel of the tiny GRD (the XML's bilinear LUT; constant along lines)."""
    return np.broadcast_to(A_NEAR + (A_FAR - A_NEAR) * np.arange(W) / 71, (H, W))


def make_geotiffs(out: Path) -> dict[str, Path]:
    """Write all fixtures under ``out``; returns name -> path."""
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    utm = CRS.from_epsg(32633)
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0)
    paths: dict[str, Path] = {}

    grd = out / "SAFE" / "measurement" / "s1a-iw-grd-vv-tiny.tiff"
    grd.parent.mkdir(parents=True, exist_ok=True)
    dn = np.clip(np.rint(np.sqrt(_sigma0(rng)) * calibration_a()), 1, 65535).astype(np.uint16)
    _zero_border(dn)
    gcps = [
        GroundControlPoint(row=r, col=c, x=10.0 + c * 1e-4, y=45.0 - r * 1e-4, z=0.0, id=f"{i}")
        for i, (r, c) in enumerate([(0, 0), (0, W), (H, 0), (H, W)])
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GCPs are set just below
        f = rasterio.open(grd, "w", driver="GTiff", height=H, width=W, count=1, dtype="uint16")
    with f:
        f.write(dn, 1)
        f.gcps = (gcps, CRS.from_epsg(4326))
    _calibration_xml(
        out / "SAFE" / "annotation" / "calibration" / "calibration-s1a-iw-grd-vv-tiny.xml"
    )
    paths["grd"] = grd

    s0 = _sigma0(rng)
    s0[10:13, 30:33] = np.nan
    s0[50, 40] = np.inf
    s0[50, 41] = -np.inf
    s0[60, 20:23] = -0.5
    s0[30, 50] = 0.0  # an interior zero: non-positive, not border
    s0[70:74, 60:64] = -9999.0
    _zero_border(s0)
    paths["sigma0"] = out / "sigma0_crs.tif"
    with rasterio.open(
        paths["sigma0"],
        "w",
        driver="GTiff",
        height=H,
        width=W,
        count=1,
        dtype="float32",
        crs=utm,
        transform=transform,
        nodata=-9999.0,
    ) as f:
        f.write(s0, 1)

    db = (10 * np.log10(_sigma0(rng))).astype(np.float32)
    db[20:23, 20:23] = np.nan
    _zero_border(db)
    paths["db"] = out / "db.tif"
    with rasterio.open(
        paths["db"],
        "w",
        driver="GTiff",
        height=H,
        width=W,
        count=1,
        dtype="float32",
        crs=utm,
        transform=transform,
    ) as f:
        f.write(db, 1)
        f.set_band_unit(1, "dB")

    vv = _sigma0(rng)
    vh = (vv * 0.2).astype(np.float32)  # cross-pol about 7 dB lower
    paths["dual"] = out / "dual.tif"
    with rasterio.open(
        paths["dual"],
        "w",
        driver="GTiff",
        height=H,
        width=W,
        count=2,
        dtype="float32",
        crs=utm,
        transform=transform,
    ) as f:
        f.write(np.stack([vv, vh]))
        f.set_band_description(1, "VV")
        f.set_band_description(2, "VH")
    return paths


if __name__ == "__main__":
    for name, path in make_geotiffs(Path(sys.argv[1])).items():
        print(name, path)
