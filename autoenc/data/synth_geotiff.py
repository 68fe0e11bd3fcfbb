# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Synthetic scenes written as GeoTIFFs with the defects real products have.

Even-numbered scenes are map-projected (CRS + affine transform, like terrain-corrected
products); odd-numbered ones carry only GCPs (like GRD measurement files). Every scene has an
untagged, slanted zero border on its left and right edges (GRD swath fill) and float scenes
get a few NaN holes. ``autoenc prepare`` must mask all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from autoenc.data.speckle import PRODUCTS, SpeckleModel
from autoenc.data.synth import SceneContent, synth_scene
from autoenc.sar.geotiff import GeoMetadata, GeoTiffWriter, epsg_wkt

SynthKind = Literal["intensity", "amplitude", "db"]
#: Calibration constant of synthetic DN: σ⁰ = DN² / A² (Sentinel-1 IW values are similar).
SYNTH_CALIBRATION_A = 500.0
#: Largest base scene generated in one piece; larger scenes mirror-tile it (bounded memory).
MAX_BASE = 2048
_STRIP = 512


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """Independent per-scene generator, so scenes don't depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _reflect(i: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    m = i % (2 * n)
    return np.where(m < n, m, 2 * n - 1 - m)


def border_extent(height: int, width: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per row: number of zero-fill columns on the left and on the right (slanted edges)."""
    r = np.arange(height) / max(height - 1, 1)
    left = np.rint(width * (0.01 + 0.01 * r)).astype(np.int64)
    right = np.rint(width * (0.015 - 0.01 * r)).astype(np.int64)
    return np.maximum(left, 1), np.maximum(right, 1)


def _gcps(height: int, width: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A 4 x 4 grid of lat/lon tie points over a slightly rotated footprint."""
    lat0, lon0 = rng.uniform(40.0, 55.0), rng.uniform(-5.0, 25.0)
    out = []
    for i, row in enumerate(np.linspace(0, height, 4)):
        for j, col in enumerate(np.linspace(0, width, 4)):
            out.append(
                {
                    "row": float(row),
                    "col": float(col),
                    "x": float(lon0 + col * 1.3e-4 + row * 2e-5),
                    "y": float(lat0 - row * 9e-5 + col * 1.5e-5),
                    "z": 0.0,
                    "id": f"{i * 4 + j + 1}",
                    "info": "",
                }
            )
    return out


def _geo(
    index: int, height: int, width: int, kind: SynthKind, rng: np.random.Generator
) -> GeoMetadata:
    units = {"intensity": "sigma0 linear", "db": "dB", "amplitude": None}[kind]
    if index % 2 == 0 and kind != "amplitude":
        x0, y0 = float(rng.uniform(3e5, 7e5)), float(rng.uniform(5.0e6, 5.5e6))
        return GeoMetadata(
            crs_wkt=epsg_wkt(32633),
            transform=(10.0, 0.0, x0, 0.0, -10.0, y0),
            description="VV",
            units=units,
        )
    # GCP-only scenes carry no unit metadata: the reader must infer the kind from the values.
    return GeoMetadata(
        gcps=_gcps(height, width, rng),
        gcps_crs_wkt=epsg_wkt(4326),
        description="VV",
        tags={"MISSION": "SYNTHETIC-S1"},
    )


def _encode(inten: NDArray[np.float32], kind: SynthKind) -> NDArray[Any]:
    if kind == "amplitude":
        dn = np.rint(np.sqrt(inten, dtype=np.float32) * np.float32(SYNTH_CALIBRATION_A))
        return np.clip(dn, 1, 65535).astype(np.uint16)  # 0 is reserved for fill
    if kind == "db":
        return (10.0 * np.log10(inten, dtype=np.float32)).astype(np.float32)
    return inten


def mirror_rows_cols(
    height: int, width: int, base_shape: tuple[int, ...]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Base-scene row and column of every scene pixel (scenes over :data:`MAX_BASE` mirror-tile)."""
    return _reflect(np.arange(height), base_shape[0]), _reflect(np.arange(width), base_shape[1])


def write_scene(
    path: Path,
    size: int | tuple[int, int],
    index: int,
    seed: int = 0,
    model: SpeckleModel | None = None,
    kind: SynthKind = "intensity",
    defects: bool = True,
    content: SceneContent | None = None,
) -> NDArray[np.float32]:
    """Write one synthetic scene as a GeoTIFF in strips (memory bounded by :data:`MAX_BASE`).

    Returns:
        The noise-free reflectivity (σ⁰ dB) of the base scene; pixel (r, c) of the written
        scene is ``truth[mirror_rows_cols(...)[0][r], ...[1][c]]``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    rng = scene_rng(seed, index)
    model = PRODUCTS["grdh"] if model is None else model
    base, truth = synth_scene(
        (min(h, MAX_BASE), min(w, MAX_BASE)), rng=rng, model=model, content=content
    )
    geo = _geo(index, h, w, kind, rng)
    left, right = border_extent(h, w)
    n_holes = max(1, round(3 * h * w / 1024**2)) if defects and kind != "amplitude" else 0
    radius = max(1, min(h, w) // 128)
    holes = np.stack([rng.integers(0, h, n_holes), rng.integers(0, w, n_holes)], axis=1)
    rows_all, cols = mirror_rows_cols(h, w, base.shape)
    dtype = np.dtype(np.uint16 if kind == "amplitude" else np.float32)
    with GeoTiffWriter(path, h, w, dtype, geo) as out:
        for r0 in range(0, h, _STRIP):
            rows = np.arange(r0, min(r0 + _STRIP, h))
            strip = _encode(base[np.ix_(rows_all[rows], cols)], kind)
            if defects:
                c = np.arange(w)[None, :]
                fill = (c < left[rows, None]) | (c >= w - right[rows, None])
                strip[fill] = 0
                for y, x in holes:
                    near = (rows[:, None] - y) ** 2 + (c - x) ** 2 <= radius**2
                    strip[near] = np.nan
            out.write(strip, r0)
    return truth


def write_scenes(
    out_dir: Path,
    scenes: int,
    size: int,
    seed: int = 0,
    model: SpeckleModel | None = None,
    kind: SynthKind = "intensity",
    defects: bool = True,
    advance: Callable[[], None] | None = None,
    content: SceneContent | None = None,
    truth: Callable[[Path, NDArray[np.float32]], None] | None = None,
) -> list[Path]:
    """Write ``scenes`` GeoTIFFs named ``synth_<seed>_<i>.tif`` into ``out_dir``.

    ``truth(path, reflectivity_db)`` is called with each scene's base truth when given.
    """
    paths = []
    for i in range(scenes):
        p = Path(out_dir) / f"synth_{seed}_{i:04d}.tif"
        base_truth = write_scene(p, size, i, seed, model, kind, defects, content)
        if truth is not None:
            truth(p, base_truth)
        paths.append(p)
        if advance is not None:
            advance()
    return paths
