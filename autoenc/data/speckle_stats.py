# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Speckle statistics as measured on real products: dB-residual autocorrelation and ENL.

The same numbers were measured on real Sentinel-1 IW GRD σ⁰ (lag-1 of the dB residual
0.61-0.71 in both directions, lag-2 about 0.2, ENL about 4.4), so the synthetic products can be
checked against them with the very same estimator (``benchmarks/synth_stats.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.speckle import PRODUCTS, SpeckleModel, chain_speckle
from autoenc.data.synth import BRIGHT_DB, DARK_DB, synth_scene
from autoenc.data.synth_geotiff import scene_rng

#: Side of the moving mean subtracted from the dB image (the real-data measurement used 9).
RESIDUAL_BOX = 9


def box_mean(a: NDArray[Any], k: int = RESIDUAL_BOX) -> NDArray[np.float64]:
    """Mean over every full ``k`` x ``k`` window ("valid" mode: shape shrinks by k - 1)."""
    c = np.cumsum(np.cumsum(np.pad(np.asarray(a, np.float64), ((1, 0), (1, 0))), 0), 1)
    s = c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]
    return s / float(k * k)


def db_residual(intensity: NDArray[Any], k: int = RESIDUAL_BOX) -> NDArray[np.float64]:
    """The dB image minus its ``k`` x ``k`` moving mean, where that mean is defined."""
    d = 10.0 * np.log10(np.maximum(np.asarray(intensity, np.float64), 1e-30))
    h = k // 2
    return d[h : d.shape[0] - h, h : d.shape[1] - h] - box_mean(d, k)


def lag_correlation(
    a: NDArray[Any], lag: int, axis: int, valid: NDArray[np.bool_] | None = None
) -> float:
    """Normalised autocovariance of ``a`` at ``lag`` pixels along ``axis`` (0 rows, 1 cols).

    With ``valid``, only pairs of two valid pixels count (and the mean is theirs).
    """
    x = np.asarray(a, np.float64)
    n = x.shape[axis]
    ok = np.ones(x.shape, bool) if valid is None else np.asarray(valid, bool)
    pair = np.take(ok, range(n - lag), axis) & np.take(ok, range(lag, n), axis)
    x = x - x[ok].mean()
    u, v = np.take(x, range(n - lag), axis)[pair], np.take(x, range(lag, n), axis)[pair]
    return float(np.mean(u * v) / np.sqrt(np.mean(u * u) * np.mean(v * v)))


def near(mask: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """Pixels within a (2 radius + 1)² square of any True pixel of ``mask`` (same shape)."""
    padded = np.pad(np.asarray(mask, np.float64), radius)
    return box_mean(padded, 2 * radius + 1) > 0


@dataclass(frozen=True)
class SpeckleStats:
    """Median statistics over patches of one product (``lag[axis][k]`` is lag ``k + 1``)."""

    lag_rows: tuple[float, ...]
    lag_cols: tuple[float, ...]
    enl: float
    enl_blocks: int
    patches: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return {
            "lag_rows": list(self.lag_rows),
            "lag_cols": list(self.lag_cols),
            "enl": self.enl,
            "enl_blocks": self.enl_blocks,
            "patches": self.patches,
        }


def measure(
    scenes: list[tuple[NDArray[np.float32], NDArray[np.float32]]],
    patch: int = 256,
    block: int = 32,
    max_step_db: float = 0.3,
    target_db: float = 5.0,
    margin: int = 8,
    dark_db: float = -25.0,
) -> SpeckleStats:
    """Median dB-residual lags over ``patch``-sized tiles and median ENL of flat blocks.

    Both describe the speckle of distributed scatterers, as ENL is measured on real data:
    pixels within ``margin`` px of a point target (truth above ``target_db``) are left out of
    the lags; an ENL block must be far from targets, have no edge within itself and its
    ``margin`` (no edge whose blurred response reaches in) and lie above ``dark_db`` (calm water
    there is dominated by the sidelobes of ships and the coast, as in real SAR).

    Args:
        scenes: (speckled linear intensity, truth σ⁰ dB) pairs.
        patch: tile side for the autocorrelation (the real-data numbers are per 256² patch).
        block: side of the ENL blocks.
        max_step_db: a block is homogeneous when no 1-px step of its truth (and its margin)
            exceeds this; the ENL is that of the ratio image intensity / truth, which removes
            the slow texture.
        target_db: truth level of point targets.
        margin: distance kept from point targets and edges, px.
        dark_db: truth level below which no ENL block is taken.
    """
    lags: list[list[list[float]]] = [[], []]
    enls: list[float] = []
    for inten, truth_db in scenes:
        h, w = inten.shape
        far = ~near(np.asarray(truth_db) > target_db, margin)
        e = RESIDUAL_BOX // 2
        for r in range(0, h - patch + 1, patch):
            for c in range(0, w - patch + 1, patch):
                res = db_residual(inten[r : r + patch, c : c + patch])
                ok = far[r + e : r + patch - e, c + e : c + patch - e]
                if ok.mean() < 0.25:
                    continue
                for axis in (0, 1):
                    lags[axis].append([lag_correlation(res, k, axis, ok) for k in (1, 2, 3)])
        t = np.power(10.0, np.asarray(truth_db, np.float64) / 10.0)
        td = np.asarray(truth_db, np.float64)
        step = np.zeros_like(td)  # the largest 1-px change of the truth (dB) at each pixel
        step[:, 1:] = np.abs(np.diff(td, axis=1))
        step[1:, :] = np.maximum(step[1:, :], np.abs(np.diff(td, axis=0)))
        for r in range(margin, h - block - margin + 1, block):
            for c in range(margin, w - block - margin + 1, block):
                around = (
                    slice(r - margin, r + block + margin),
                    slice(c - margin, c + block + margin),
                )
                smooth = step[around].max() < max_step_db and td[around].min() > dark_db
                if smooth and far[r : r + block, c : c + block].all():
                    ib = np.asarray(inten[r : r + block, c : c + block], np.float64)
                    ratio = ib / t[r : r + block, c : c + block]
                    enls.append(float(ratio.mean() ** 2 / ratio.var()))
    med = [tuple(float(v) for v in np.median(np.array(lags[a]), axis=0)) for a in (0, 1)]
    return SpeckleStats(
        lag_rows=med[0],
        lag_cols=med[1],
        enl=float(np.median(enls)) if enls else float("nan"),
        enl_blocks=len(enls),
        patches=len(lags[0]),
    )


#: What each product must reproduce: (lag-1 range of the dB residual, ENL range, what the lag
#: range applies to), from real IW GRDH σ⁰ (lag-1 0.61-0.71, ENL 4.4) and SLC-derived single-look
#: intensity (lag-1 0.03-0.13). For grdh the lag applies to the scenes (as measured on real
#: scenes); for the others to the speckle alone (a flat reflectivity), since their scene-level
#: lags are those of the scene content.
TARGETS: dict[str, tuple[tuple[float, float], tuple[float, float], str]] = {
    "grdh": ((0.6, 0.75), (4.0, 5.0), "scene"),
    "slc-intensity": ((-0.05, 0.15), (0.85, 1.15), "speckle"),
    "white": ((-0.05, 0.05), (4.0, 5.0), "speckle"),
}


def flat_lags(model: SpeckleModel, side: int = 1024) -> tuple[float, float]:
    """Lag-1 of the dB residual of a product's speckle alone (rows, cols), seed 0."""
    flat = np.full((side, side), 0.05, dtype=np.float32)
    res = db_residual(chain_speckle(flat, model, np.random.default_rng(0)))
    return lag_correlation(res, 1, 0), lag_correlation(res, 1, 1)


def measure_products(scenes: int = 4, size: int = 1024, seed: int = 0) -> dict[str, Any]:
    """Every product of :data:`PRODUCTS` on the default scene content, against its target."""
    out: dict[str, Any] = {"scenes": scenes, "size": size, "seed": seed, "products": {}}
    for name, model in PRODUCTS.items():
        t0 = time.perf_counter()
        pairs = [synth_scene(size, rng=scene_rng(seed, i), model=model) for i in range(scenes)]
        gen_s = time.perf_counter() - t0
        st = measure(pairs)
        (lo, hi), (elo, ehi), on = TARGETS[name]
        flat = flat_lags(model)
        lag1 = (st.lag_rows[0], st.lag_cols[0]) if on == "scene" else flat
        out["products"][name] = {
            **st.to_dict(),
            "speckle_alone_lag1": list(flat),
            "bright_share": float(np.mean([(t > BRIGHT_DB).mean() for _, t in pairs])),
            "dark_share": float(np.mean([(t < DARK_DB).mean() for _, t in pairs])),
            "generate_s_per_scene": gen_s / scenes,
            "target": {"lag1": [lo, hi], "on": on, "enl": [elo, ehi]},
            "ok": bool(all(lo <= v <= hi for v in lag1) and elo <= st.enl <= ehi),
        }
    return out


def markdown_table(record: dict[str, Any]) -> str:
    """The README's table of :func:`measure_products` output."""
    lines = [
        f"Measured by `python benchmarks/synth_stats.py` ({record['scenes']} scenes of "
        f"{record['size']}² per product, seed {record['seed']}):",
        "",
        "| product | lag-1 rows / cols | lag-2 rows / cols | speckle alone: lag-1 rows / cols "
        "| ENL (blocks) | truth > +5 dB | truth < −25 dB | target: lag-1 (on) / ENL | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in record["products"].items():
        t = p["target"]
        lines.append(
            f"| {name} | {p['lag_rows'][0]:.2f} / {p['lag_cols'][0]:.2f} | "
            f"{p['lag_rows'][1]:.2f} / {p['lag_cols'][1]:.2f} | "
            f"{p['speckle_alone_lag1'][0]:.2f} / {p['speckle_alone_lag1'][1]:.2f} | "
            f"{p['enl']:.2f} ({p['enl_blocks']}) | {100 * p['bright_share']:.2f} % | "
            f"{100 * p['dark_share']:.2f} % | {t['lag1'][0]:g}–{t['lag1'][1]:g} ({t['on']}) / "
            f"{t['enl'][0]:g}–{t['enl'][1]:g} | {'yes' if p['ok'] else 'no'} |"
        )
    return "\n".join(lines)
