# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Sentinel-1-like synthetic SAR scenes for training without real data.

Scenes combine a piecewise-smooth reflectivity map (land-cover regions,
agricultural parcels, texture, rivers, roads, point targets) with fully
developed multiplicative Gamma speckle, so a compression model sees the same
kinds of structure and noise statistics as on GRD intensity images.
Everything is numpy-only and driven by one ``np.random.Generator``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Land-cover classes: (name, probability, dB range of the class mean,
#: texture amplitude range in dB, smooth-variation amplitude range in dB).
LAND_COVER: tuple[
    tuple[str, float, tuple[float, float], tuple[float, float], tuple[float, float]], ...
] = (
    ("water", 0.15, (-22.0, -18.0), (0.0, 0.3), (0.5, 1.5)),
    ("fields", 0.40, (-14.0, -8.0), (0.3, 1.5), (1.0, 3.0)),
    ("forest", 0.30, (-9.0, -6.0), (0.8, 2.0), (0.5, 1.5)),
    ("urban", 0.15, (-4.0, 2.0), (2.0, 4.0), (1.0, 3.0)),
)
_WATER, _FIELDS, _FOREST, _URBAN = range(4)

#: Low-resolution factor for region labelling (upsampled by nearest neighbour).
_LABEL_FACTOR = 4
#: Reference side length the feature densities are specified for.
_REF_SIDE = 1024.0


def _shape(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    if int(h) < 8 or int(w) < 8:
        raise ValueError(f"scene size must be at least 8x8, got {size!r}")
    return int(h), int(w)


def smooth_noise(
    shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator
) -> NDArray[np.float32]:
    """Bilinearly upsampled white noise: a cheap band-limited random field.

    ``cells`` is the coarse grid size; the result has roughly unit variance.
    """
    h, w = shape
    gh, gw = max(int(cells[0]), 1) + 1, max(int(cells[1]), 1) + 1
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    ys = np.linspace(0.0, gh - 1.0, h, dtype=np.float32)
    xs = np.linspace(0.0, gw - 1.0, w, dtype=np.float32)
    y0 = np.minimum(ys.astype(np.int64), gh - 2)
    x0 = np.minimum(xs.astype(np.int64), gw - 2)
    wy = (ys - y0)[:, None]
    wx = (xs - x0)[None, :]
    top = g[y0][:, x0] * (1 - wx) + g[y0][:, x0 + 1] * wx
    bot = g[y0 + 1][:, x0] * (1 - wx) + g[y0 + 1][:, x0 + 1] * wx
    # Bilinear interpolation shrinks variance to about 4/9; rescale to ~1.
    return ((top * (1 - wy) + bot * wy) * np.float32(1.5)).astype(np.float32)


def _nearest_seed(
    ys: NDArray[np.float32], xs: NDArray[np.float32], seeds: NDArray[np.float32]
) -> NDArray[np.int32]:
    """Label each (y, x) with its nearest seed, keeping a running minimum."""
    best = np.full(ys.shape, np.inf, dtype=np.float32)
    lab = np.zeros(ys.shape, dtype=np.int32)
    for k, (sy, sx) in enumerate(seeds):
        d = (ys - sy) ** 2 + (xs - sx) ** 2
        closer = d < best
        best = np.where(closer, d, best)
        lab[closer] = k
    return lab


def _upsample_nearest(a: NDArray[Any], shape: tuple[int, int], factor: int) -> NDArray[Any]:
    iy = np.minimum(np.arange(shape[0]) // factor, a.shape[0] - 1)
    ix = np.minimum(np.arange(shape[1]) // factor, a.shape[1] - 1)
    return a[iy][:, ix]


def _regions(shape: tuple[int, int], rng: np.random.Generator) -> NDArray[np.int32]:
    """Voronoi regions with warped (irregular) boundaries, in full resolution."""
    h, w = shape
    f = _LABEL_FACTOR
    lh, lw = -(-h // f), -(-w // f)
    scale = h * w / _REF_SIDE**2
    n = max(2, int(round(rng.integers(8, 31) * scale)))
    seeds = (rng.random((n, 2)) * np.array([lh, lw])).astype(np.float32)
    ys, xs = np.mgrid[0:lh, 0:lw].astype(np.float32)
    amp = 0.08 * min(lh, lw)
    cells = (max(2, lh // 24), max(2, lw // 24))
    ys = ys + amp * smooth_noise((lh, lw), cells, rng)
    xs = xs + amp * smooth_noise((lh, lw), cells, rng)
    return _upsample_nearest(_nearest_seed(ys, xs, seeds), shape, f)


def _parcels(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> NDArray[np.int32]:
    """Jittered-grid Voronoi parcels (agricultural fields), ~``cell`` px wide."""
    h, w = shape
    f = _LABEL_FACTOR
    lh, lw = -(-h // f), -(-w // f)
    c = max(cell / f, 2.0)
    gh, gw = int(np.ceil(lh / c)) + 1, int(np.ceil(lw / c)) + 1
    jit = rng.random((gh, gw, 2)).astype(np.float32)
    sy = (np.arange(gh, dtype=np.float32)[:, None] + jit[..., 0]) * c
    sx = (np.arange(gw, dtype=np.float32)[None, :] + jit[..., 1]) * c
    ys, xs = np.mgrid[0:lh, 0:lw].astype(np.float32)
    cy = np.minimum((ys // c).astype(np.int64), gh - 1)
    cx = np.minimum((xs // c).astype(np.int64), gw - 1)
    best = np.full((lh, lw), np.inf, dtype=np.float32)
    lab = np.zeros((lh, lw), dtype=np.int32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny, nx = np.clip(cy + dy, 0, gh - 1), np.clip(cx + dx, 0, gw - 1)
            d = (ys - sy[ny, nx]) ** 2 + (xs - sx[ny, nx]) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            lab = np.where(closer, (ny * gw + nx).astype(np.int32), lab)
    return _upsample_nearest(lab, shape, f)


def _curve_mask(
    shape: tuple[int, int], width: float, wiggle: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Rasterise a meandering curve of the given width crossing the scene."""
    h, w = shape
    n = int(1.5 * max(h, w))
    y, x = rng.random() * h, rng.random() * w
    theta0 = rng.random() * 2 * np.pi
    knots = rng.standard_normal(max(n // 80, 2) + 1) * wiggle
    curv = np.interp(np.arange(n), np.linspace(0, n - 1, knots.size), knots)
    theta = theta0 + np.cumsum(curv)
    # Walk both directions from the start so the curve spans the scene.
    half = n // 2
    py = y + np.concatenate(
        [-np.cumsum(np.sin(theta[:half]))[::-1], np.cumsum(np.sin(theta[half:]))]
    )
    px = x + np.concatenate(
        [-np.cumsum(np.cos(theta[:half]))[::-1], np.cumsum(np.cos(theta[half:]))]
    )
    r = max(width / 2.0, 0.5)
    ri = int(np.ceil(r))
    oy, ox = np.mgrid[-ri : ri + 1, -ri : ri + 1]
    keep = oy**2 + ox**2 <= r * r + 0.25
    oy, ox = oy[keep], ox[keep]
    yy = (np.rint(py)[:, None] + oy[None, :]).ravel().astype(np.int64)
    xx = (np.rint(px)[:, None] + ox[None, :]).ravel().astype(np.int64)
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    m = np.zeros(shape, dtype=bool)
    m[yy[ok], xx[ok]] = True
    return m


def _point_targets(
    refl_db: NDArray[np.float32], urban: NDArray[np.bool_], rng: np.random.Generator
) -> None:
    """Add 1-3 px bright scatterers 10-30 dB above the local background, in place."""
    h, w = refl_db.shape
    n_bg = rng.poisson(2e-5 * h * w)
    ys = list(rng.integers(0, h, n_bg))
    xs = list(rng.integers(0, w, n_bg))
    uy, ux = np.nonzero(urban)
    if uy.size:
        pick = rng.integers(0, uy.size, rng.poisson(3e-4 * uy.size))
        ys += list(uy[pick])
        xs += list(ux[pick])
    if not ys:  # guarantee at least one target so every scene has one
        ys, xs = [int(rng.integers(0, h))], [int(rng.integers(0, w))]
    for y, x in zip(ys, xs, strict=True):
        s = int(rng.integers(1, 4))
        y0, x0 = min(int(y), h - s), min(int(x), w - s)
        boost = np.float32(rng.uniform(10.0, 30.0))
        refl_db[y0 : y0 + s, x0 : x0 + s] = refl_db[y, x] + boost


def reflectivity_db(size: int | tuple[int, int], rng: np.random.Generator) -> NDArray[np.float32]:
    """Noise-free backscatter map in dB (piecewise smooth with sharp edges)."""
    shape = _shape(size)
    h, w = shape
    lab = _regions(shape, rng)
    n = int(lab.max()) + 1
    probs = np.array([c[1] for c in LAND_COVER])
    cls = rng.choice(len(LAND_COVER), size=n, p=probs / probs.sum())
    mean = np.array([rng.uniform(*LAND_COVER[c][2]) for c in cls], dtype=np.float32)
    tex_amp = np.array([rng.uniform(*LAND_COVER[c][3]) for c in cls], dtype=np.float32)
    var_amp = np.array([rng.uniform(*LAND_COVER[c][4]) for c in cls], dtype=np.float32)
    # Only some regions get the stronger multi-scale texture.
    tex_amp *= np.where(rng.random(n) < 0.6, 1.0, 0.3).astype(np.float32)

    side = np.sqrt(h * w)
    var = smooth_noise(shape, (max(1, h // 200), max(1, w // 200)), rng)
    tex = 0.6 * smooth_noise(shape, (max(2, h // 40), max(2, w // 40)), rng)
    tex += 0.4 * smooth_noise(shape, (max(2, h // 12), max(2, w // 12)), rng)
    db = mean[lab] + var_amp[lab] * var + tex_amp[lab] * tex

    # Agricultural parcels: per-parcel offsets inside field regions.
    fields = (cls == _FIELDS)[lab]
    if fields.any():
        par = _parcels(shape, float(rng.uniform(40.0, 90.0)), rng)
        off = rng.uniform(-3.0, 3.0, int(par.max()) + 1).astype(np.float32)
        db = np.where(fields, db + off[par], db)

    scale = side / _REF_SIDE
    for _ in range(rng.poisson(1.0 * scale)):  # rivers: dark, wide, meandering
        m = _curve_mask(shape, float(rng.uniform(3.0, 10.0)), 0.02, rng)
        db[m] = rng.uniform(-22.0, -18.0)
    for _ in range(rng.poisson(2.5 * scale)):  # roads / levees: bright, thin, straighter
        m = _curve_mask(shape, float(rng.uniform(1.0, 3.0)), 0.004, rng)
        db[m] = rng.uniform(-5.0, 0.0)

    db = db.astype(np.float32)
    _point_targets(db, (cls == _URBAN)[lab], rng)
    return db


def speckle(
    reflectivity_linear: NDArray[np.floating[Any]], looks: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Multiply by unit-mean Gamma(L, 1/L) speckle: L-look intensity, ENL = L."""
    if not looks > 0:
        raise ValueError(f"looks must be > 0, got {looks!r}")
    r = np.asarray(reflectivity_linear, dtype=np.float32)
    g = rng.standard_gamma(looks, size=r.shape, dtype=np.float32) / np.float32(looks)
    return (r * g).astype(np.float32)


def synth_scene(
    size: int | tuple[int, int],
    looks: float = 4.4,
    rng: np.random.Generator | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Generate one synthetic scene.

    Args:
        size: side length or (H, W).
        looks: equivalent number of looks of the speckle (S1 IW GRD ~4.4).
        rng: random generator; pass a seeded one for reproducible scenes.

    Returns:
        (speckled linear intensity, noise-free reflectivity in dB), both float32 (H, W).
    """
    rng = np.random.default_rng() if rng is None else rng
    db = reflectivity_db(size, rng)
    lin = np.power(np.float32(10.0), db / np.float32(10.0)).astype(np.float32)
    inten = speckle(lin, looks, rng)
    # Gamma samples can underflow to 0 in float32; keep intensity strictly positive.
    np.maximum(inten, np.float32(1e-12), out=inten)
    return inten, db
