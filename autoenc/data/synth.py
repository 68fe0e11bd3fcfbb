# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Sentinel-1-like synthetic SAR scenes for training without real data.

A scene is a noise-free reflectivity map (the *truth*) seen through the SAR imaging chain of
:mod:`autoenc.data.speckle` (correlated speckle of IW GRDH by default). The reflectivity has
the content and the dynamic range of real scenes: land-cover regions and agricultural parcels
with sub-pixel (anti-aliased) boundaries, forest and urban texture, rivers and roads, calm water
below the usual σ⁰ window (a configurable share of pixels below −25 dB) and point targets
(ships, corner reflectors, urban double bounce) far above it (a configurable share above
+5 dB). Everything is numpy-only and driven by one ``np.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.speckle import PRODUCTS, SpeckleModel, chain_speckle

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

#: Reference side length the feature densities are specified for.
_REF_SIDE = 1024.0
#: Thresholds of the dynamic-range shares (σ⁰ dB): what the usual window (−25, 5) clips.
BRIGHT_DB = 5.0
DARK_DB = -25.0
#: Diffuse (non-target) urban backscatter stays below this, so only point targets pass +5 dB.
_DIFFUSE_MAX_DB = 4.0


@dataclass(frozen=True)
class SceneContent:
    """What a synthetic scene contains beyond its land cover.

    Attributes:
        bright_fraction: share of pixels of the truth above :data:`BRIGHT_DB` (point targets:
            ships, corner reflectors, urban double bounce); reached exactly up to one target.
        dark_fraction: share of calm water below :data:`DARK_DB` (one sea/lake body whose
            outline is a level set of a smooth field, so its area is exact up to its
            anti-aliased rim).
    """

    bright_fraction: float = 0.002
    dark_fraction: float = 0.03

    def to_dict(self) -> dict[str, float]:
        """JSON record for manifests (``source.content``)."""
        return {"bright_fraction": self.bright_fraction, "dark_fraction": self.dark_fraction}

    def __post_init__(self) -> None:
        for name in ("bright_fraction", "dark_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 0.5:
                raise ValueError(f"{name} must be in [0, 0.5], got {v!r}")


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


def _regions(shape: tuple[int, int], rng: np.random.Generator) -> NDArray[np.int32]:
    """Voronoi regions with warped (irregular) boundaries, labelled at full resolution.

    (Labelling on a coarser grid, as this generator once did, makes staircase edges.)
    """
    lh, lw = shape
    scale = lh * lw / _REF_SIDE**2
    n = max(2, int(round(rng.integers(8, 31) * scale)))
    seeds = (rng.random((n, 2)) * np.array([lh, lw])).astype(np.float32)
    ys, xs = np.mgrid[0:lh, 0:lw].astype(np.float32)
    amp = 0.08 * min(lh, lw)
    cells = (max(2, lh // 24), max(2, lw // 24))
    ys = ys + amp * smooth_noise((lh, lw), cells, rng)
    xs = xs + amp * smooth_noise((lh, lw), cells, rng)
    return _nearest_seed(ys, xs, seeds)


def _parcels(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> NDArray[np.int32]:
    """Jittered-grid Voronoi parcels (agricultural fields), ~``cell`` px wide."""
    lh, lw = shape
    c = max(cell, 2.0)
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
    return lab


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


def _blur3(a: NDArray[np.float32]) -> NDArray[np.float32]:
    """Separable [1, 2, 1] / 4 blur with replicated edges (anti-aliasing of a sharp map)."""
    p = np.pad(a, 1, mode="edge")
    v = 0.25 * p[:-2] + 0.5 * p[1:-1] + 0.25 * p[2:]
    return (0.25 * v[:, :-2] + 0.5 * v[:, 1:-1] + 0.25 * v[:, 2:]).astype(np.float32)


def _soft_cap(db: NDArray[np.float32], knee: float = 0.0) -> NDArray[np.float32]:
    """Compress diffuse backscatter above ``knee`` smoothly below :data:`_DIFFUSE_MAX_DB`.

    ``knee + (M - knee) tanh((x - knee) / (M - knee))``: identity to first order at the knee,
    texture kept (no plateau), and nothing diffuse reaches +5 dB, so the bright share is the
    point targets' alone.
    """
    span = np.float32(_DIFFUSE_MAX_DB - knee)
    soft = np.float32(knee) + span * np.tanh((db - np.float32(knee)) / span)
    return np.where(db > knee, soft, db).astype(np.float32)


def _to_lin(db: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.power(np.float32(10.0), db / np.float32(10.0)).astype(np.float32)


def _to_db(lin: NDArray[np.float32]) -> NDArray[np.float32]:
    return (10.0 * np.log10(np.maximum(lin, np.float32(1e-30)))).astype(np.float32)


def _antialias_with_sea(
    db: NDArray[np.float32], fraction: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Anti-alias the sharp map (in linear intensity) and lay one calm-water body into it.

    The sea is a level set of a smooth field; its level is refined once so that, after the
    anti-aliased rim, the share of pixels below :data:`DARK_DB` is ``fraction``.
    """
    land = _to_lin(db)
    if fraction <= 0:
        return _to_db(_blur3(land))
    h, w = db.shape
    field = smooth_noise((h, w), (max(2, h // 256), max(2, w // 256)), rng)
    level = rng.uniform(-29.0, -26.5) + 0.8 * smooth_noise((h, w), (2, 2), rng)
    sea_lin = _to_lin(np.minimum(level, DARK_DB - 0.5).astype(np.float32))
    dark_lin = _to_lin(np.array([DARK_DB], np.float32))[0]
    want = fraction
    out = land
    for _ in range(3):  # the rim loses a little area each time; two refinements suffice
        m = (field > np.quantile(field, 1.0 - min(want, 0.999))).astype(np.float32)
        out = _blur3(land * (1 - m) + sea_lin * m)
        got = float((out < dark_lin).mean())
        if got <= 0 or abs(got - fraction) <= 0.02 * fraction:
            break
        want *= fraction / got
    return _to_db(out)


#: Cumulative shares of the point-target kinds: urban, ship, anywhere.
_TARGET_MIX = np.array([0.5, 0.65])


def _point_targets(
    db: NDArray[np.float32],
    urban: NDArray[np.bool_],
    water: NDArray[np.bool_],
    fraction: float,
    rng: np.random.Generator,
) -> None:
    """Add point targets at +8 … +35 dB σ⁰ until ``fraction`` of pixels exceed +5 dB, in place.

    Half are urban double bounce (1-3 px, inside urban regions), 15 % ships (1-2 x 3-8 px, on
    water where there is any), the rest corner reflectors and isolated structures anywhere
    (1-3 px). Levels are skewed towards the low end (most targets +8 … +20 dB). Counting after
    every batch makes the share exact up to one target.
    """
    h, w = db.shape
    need = int(round(fraction * h * w))
    if need == 0:
        return
    places = [np.flatnonzero(urban.ravel()), np.flatnonzero(water.ravel()), None]
    have = int((db > BRIGHT_DB).sum())
    while have < need:
        for _ in range(max(1, (need - have) // 12)):
            kind = int(np.searchsorted(_TARGET_MIX, rng.random()))
            where = places[kind]
            if where is not None and where.size:
                y, x = divmod(int(where[rng.integers(0, where.size)]), w)
            else:
                y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
            if kind == 1:  # a ship: elongated along a random axis
                sy, sx = int(rng.integers(1, 3)), int(rng.integers(3, 9))
                if rng.random() < 0.5:
                    sy, sx = sx, sy
            else:
                sy, sx = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            y0, x0 = min(y, h - sy), min(x, w - sx)
            patch = db[y0 : y0 + sy, x0 : x0 + sx]
            np.maximum(patch, np.float32(8.0 + 27.0 * rng.random() ** 2), out=patch)
        have = int((db > BRIGHT_DB).sum())


def reflectivity_db(
    size: int | tuple[int, int],
    rng: np.random.Generator,
    content: SceneContent | None = None,
) -> NDArray[np.float32]:
    """Noise-free backscatter map (σ⁰ dB): piecewise smooth, anti-aliased edges, full range."""
    content = SceneContent() if content is None else content
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

    water = (cls == _WATER)[lab]
    scale = side / _REF_SIDE
    for _ in range(rng.poisson(1.0 * scale)):  # rivers: dark, wide, meandering
        m = _curve_mask(shape, float(rng.uniform(3.0, 10.0)), 0.02, rng)
        db[m] = rng.uniform(-22.0, -18.0)
        water |= m
    for _ in range(rng.poisson(2.5 * scale)):  # roads / levees: bright, thin, straighter
        m = _curve_mask(shape, float(rng.uniform(1.0, 3.0)), 0.004, rng)
        db[m] = rng.uniform(-5.0, 0.0)

    db = _soft_cap(db.astype(np.float32))
    db = _antialias_with_sea(db, content.dark_fraction, rng)
    water |= db < DARK_DB
    _point_targets(db, (cls == _URBAN)[lab], water, content.bright_fraction, rng)
    return db


def speckle(
    reflectivity_linear: NDArray[np.floating[Any]], looks: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Multiply by unit-mean Gamma(L, 1/L) speckle: white L-look intensity, ENL = L."""
    return chain_speckle(reflectivity_linear, SpeckleModel("white", looks, white=True), rng)


def synth_scene(
    size: int | tuple[int, int],
    looks: float | None = None,
    rng: np.random.Generator | None = None,
    model: SpeckleModel | None = None,
    content: SceneContent | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Generate one synthetic scene.

    Args:
        size: side length or (H, W).
        looks: replaces the speckle model's ENL when given.
        rng: random generator; pass a seeded one for reproducible scenes.
        model: the product's speckle (default: IW GRDH, ``PRODUCTS["grdh"]``).
        content: bright/dark shares (default :class:`SceneContent`).

    Returns:
        (speckled linear intensity, noise-free reflectivity in dB), both float32 (H, W).
    """
    rng = np.random.default_rng() if rng is None else rng
    model = PRODUCTS["grdh"] if model is None else model
    if looks is not None:
        model = replace(model, looks=float(looks))
    db = reflectivity_db(size, rng, content)
    return chain_speckle(_to_lin(db), model, rng), db
