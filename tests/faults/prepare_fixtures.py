# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded scene generators for the ``autoenc prepare`` fault tests (rasterio writes them).

Every scene is blocky reflectivity with Gamma speckle (ENL 4.4, as S1 GRD), so its dB values
look like SAR; the kinds and defects of the input matrix are built on top of it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine


def reflectivity(
    rng: np.random.Generator, h: int, w: int, lo_db: float = -25.0, hi_db: float = 0.0
) -> np.ndarray:
    """Linear intensity: 8x8 blocks uniform in ``lo_db..hi_db`` dB, times Gamma speckle."""
    bh, bw = -(-h // 8), -(-w // 8)
    refl = np.repeat(np.repeat(rng.uniform(lo_db, hi_db, (bh, bw)), 8, 0), 8, 1)[:h, :w]
    return 10 ** (refl / 10) * rng.gamma(4.4, 1 / 4.4, (h, w))


def noise_subtracted(rng: np.random.Generator, s: np.ndarray, nesz_db: float = -22.0) -> np.ndarray:
    """σ⁰ after thermal-noise subtraction: noise with its own speckle added, its mean removed."""
    n = 10 ** (nesz_db / 10)
    return s + n * rng.gamma(4.4, 1 / 4.4, s.shape) - n


def write_tif(
    path: Path,
    a: np.ndarray,
    *,
    nodata: float | None = None,
    units: str | None = None,
    georef: bool = True,
) -> Path:
    """One band, float32 unless ``a`` is integer, CRS + transform unless ``georef=False``."""
    a = np.asarray(a)
    dtype = a.dtype if a.dtype.kind in "iu" else np.dtype(np.float32)
    geo = (
        {"crs": CRS.from_epsg(32633), "transform": Affine(10, 0, 5e5, 0, -10, 5.2e6)}
        if georef
        else {}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            height=a.shape[0],
            width=a.shape[1],
            count=1,
            dtype=dtype.name,
            nodata=nodata,
            **geo,
        ) as f:
            f.write(a.astype(dtype), 1)
            if units:
                f.set_band_unit(1, units)
    return path


def sigma0_scenes(folder: Path, n: int, seed: int, h: int = 80, w: int = 72) -> list[Path]:
    """``n`` linear σ⁰ scenes ``scene_<i>.tif`` (positive, no metadata) in ``folder``."""
    rng = np.random.default_rng(seed)
    return [
        write_tif(folder / f"scene_{i}.tif", reflectivity(rng, h, w, -20.0, 0.0)) for i in range(n)
    ]
