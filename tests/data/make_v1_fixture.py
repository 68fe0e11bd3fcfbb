# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded generator of ``tests/data/v1_scene.aec`` and ``v2_scene.aec``: old formats kept for good.

Each fixture was made ONCE, with the shipped default model
``autoenc/pretrained/wavelet-grdh.safetensors``, by the last code that wrote its format
version: ``v1_scene.*`` by commit fa47873 (format version 1, everything outside the window
clipped), ``v2_scene.*`` by commit 8166f2f (version 2: the exception layer, verbose JSON
header, no per-scene offset), this script run with that commit on ``PYTHONPATH``:

    python tests/data/make_v1_fixture.py tests/data          # v1_scene.*
    python tests/data/make_v1_fixture.py tests/data v2       # v2_scene.*

Running it again with a later autoenc writes that version's format instead: it is kept to
show how the file came to be, and for its scene (:func:`v1_scene`), which the test
regenerates to compare the decode with. It writes ``<name>_scene.aec`` and
``<name>_scene_decoded.npz`` (the decode of that code, dB rounded to 0.001 dB as int16; the
decode lies in the window), and prints the SHA-256 of the exact decoded float32 array, which
``tests/test_codec_exceptions.py`` records.

The scene: 64 x 64 float32 linear σ⁰ (blocky reflectivity -22..2 dB with Gamma speckle, a
few pixels above and below the -25..5 dB window), 5 NaN pixels (invalid, kept exactly),
EPSG:32633 with a 10 m transform.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

H = W = 64
SEED = 13


def v1_scene() -> np.ndarray:
    """The scene's float32 linear σ⁰ (H, W), NaN at its invalid pixels."""
    rng = np.random.default_rng(SEED)
    refl_db = np.repeat(np.repeat(rng.uniform(-22, 2, (H // 8, W // 8)), 8, 0), 8, 1)
    s0 = 10 ** (refl_db / 10) * rng.gamma(4.4, 1 / 4.4, (H, W))
    s0[10, 10], s0[40, 50], s0[20, 30] = 10**1.5, 10**2.0, 10**-2.7  # +15, +20, -27 dB
    s0[rng.integers(0, H, 5), rng.integers(0, W, 5)] = np.nan
    return s0.astype(np.float32)


def write_scene(path: Path) -> None:
    """The scene as a GeoTIFF at ``path`` (rasterio directly, not autoenc's writer)."""
    profile = {"driver": "GTiff", "height": H, "width": W, "count": 1, "dtype": "float32",
               "crs": CRS.from_epsg(32633),
               "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(v1_scene(), 1)


def decoded_digest(values: np.ndarray) -> tuple[str, np.ndarray]:
    """SHA-256 of the exact decoded float32 array, and its dB in int16 units of 0.001 dB."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        db = np.where(np.isfinite(values) & (values > 0), 10 * np.log10(values), 0.0)
    return hashlib.sha256(values.tobytes()).hexdigest(), np.rint(db * 1000).astype(np.int16)


def main(out: Path, name: str = "v1") -> None:
    """Write the fixture ``<name>_scene.*`` into ``out``."""
    from autoenc.codec.cli import compress_main, decompress_main

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "v1_scene.tif"
        write_scene(tif)
        aec = out / f"{name}_scene.aec"
        if compress_main([str(tif), "-o", str(aec), "--device", "cpu", "--overwrite"]) != 0:
            raise SystemExit("compress failed")
        back = Path(tmp) / "back.tif"
        if decompress_main([str(aec), "-o", str(back), "--quiet"]) != 0:
            raise SystemExit("decompress failed")
        with rasterio.open(back) as src:
            decoded = src.read(1)
    sha, db_milli = decoded_digest(decoded)
    np.savez_compressed(out / f"{name}_scene_decoded.npz", db_milli=db_milli)
    print(f"{aec}: {aec.stat().st_size} bytes; decoded SHA-256 {sha}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent),
         sys.argv[2] if len(sys.argv) > 2 else "v1")  # fmt: skip
