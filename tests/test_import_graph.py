# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The codec stands on torch alone: ``autoenc decompress`` runs with Lightning made unimportable.

Issue 13 ("One home"): ``autoenc.codec`` used to import :mod:`autoenc.task` (for ``build_model``)
and through it Lightning and torchmetrics, so decoding a file loaded the training stack. Here a
subprocess installs a meta-path finder that refuses Lightning, torchmetrics and
:mod:`autoenc.task`, then imports the codec modules and decompresses a file written by the
shipped model, once through the shipped safetensors and once through a Lightning-style ``.ckpt``
(read by :func:`autoenc.checkpoint_io.read_checkpoint`, torch only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import Affine

from autoenc.cli import main
from autoenc.codec.model_io import load_codec
from autoenc.pretrained import default_path

pytestmark = pytest.mark.usefixtures("one_thread")

#: Import names the codec must never need (a name and everything under it).
BLOCKED = ("lightning", "lightning_fabric", "pytorch_lightning", "torchmetrics", "autoenc.task")

BLOCKED_RUN = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = {blocked!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"blocked by test_import_graph: {{name}}")
            return None

    sys.meta_path.insert(0, Refuse())
    try:
        import lightning.pytorch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("the blocker does not block")

    import autoenc.codec.cli, autoenc.codec.decode, autoenc.codec.model_io, autoenc.codec.scene
    from autoenc.cli import main

    codes = [main(argv) for argv in {runs!r}]
    loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
    print(json.dumps({{"codes": codes, "loaded": loaded}}))
    """
)


def _sigma0_tif(path: Path) -> Path:
    """A seeded 64 x 64 float32 linear σ⁰ GeoTIFF (blocky reflectivity, Gamma speckle)."""
    rng = np.random.default_rng(13)
    refl_db = np.repeat(np.repeat(rng.uniform(-20.0, 0.0, (8, 8)), 8, 0), 8, 1)
    s0 = (10 ** (refl_db / 10) * rng.gamma(4.4, 1 / 4.4, (64, 64))).astype(np.float32)
    with rasterio.open(
        path, "w", driver="GTiff", height=64, width=64, count=1, dtype="float32",
        crs=CRS.from_epsg(32633), transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0),
    ) as f:  # fmt: skip
        f.write(s0, 1)
    return path


def _lightning_style_ckpt(path: Path) -> Path:
    """The shipped model saved as ``autoenc fit`` saves a checkpoint (task prefix ``model.``)."""
    codec = load_codec(default_path())
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in codec.model.state_dict().items()},
            "hyper_parameters": {"model": codec.spec},
            "autoenc_preprocessing": codec.preprocessing.to_dict(),
        },
        path,
    )
    return path


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as f:
        return np.asarray(f.read(1))


def test_decompress_runs_with_lightning_blocked(tmp_path: Path) -> None:
    """Old code: ``autoenc.codec.model_io`` imported ``autoenc.task``, so this ImportError'd."""
    src = _sigma0_tif(tmp_path / "s0.tif")
    aec = tmp_path / "s0.aec"
    assert main(["compress", str(src), "-o", str(aec), "--device", "cpu", "--quiet"]) == 0
    ref = tmp_path / "ref.tif"
    assert main(["decompress", str(aec), "-o", str(ref), "--quiet"]) == 0
    ckpt = _lightning_style_ckpt(tmp_path / "wavelet.ckpt")
    outs = [tmp_path / "shipped.tif", tmp_path / "ckpt.tif"]
    runs = [
        ["decompress", str(aec), "-o", str(outs[0]), "--quiet"],
        ["decompress", str(aec), "-o", str(outs[1]), "--ckpt", str(ckpt), "--quiet"],
    ]
    script = BLOCKED_RUN.format(blocked=BLOCKED, runs=runs)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0], "loaded": []}, proc.stderr[-3000:]
    expected = _read(ref)
    assert expected.shape == (64, 64) and np.isfinite(expected).all()
    for out in outs:
        np.testing.assert_array_equal(_read(out), expected)


#: What the codec may import of ``autoenc.data``: the package and the speckle model (public).
CODEC_MAY_USE_DATA = {"autoenc.data", "autoenc.data.speckle"}

CODEC_IMPORTS = (
    "autoenc.codec.cli",
    "autoenc.codec.decode",
    "autoenc.codec.model_io",
    "autoenc.codec.scene",
)
SAR_IMPORTS = (
    "autoenc.sar",
    "autoenc.sar.calibration",
    "autoenc.sar.normalisation",
    "autoenc.sar.preprocessing",
    "autoenc.sar.radiometry",
    "autoenc.sar.scene_input",
    "autoenc.sar.geotiff",
)


def _modules_after(imports: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {imports!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return list(json.loads(out.stdout))


def test_codec_imports_nothing_of_prepare() -> None:
    # Issue 13: the codec stands on autoenc.sar, not on prepare's internals (scan, scene_input,
    # radiometry lived in autoenc.data).
    loaded = _modules_after(CODEC_IMPORTS)
    data = {m for m in loaded if m == "autoenc.data" or m.startswith("autoenc.data.")}
    assert data <= CODEC_MAY_USE_DATA, sorted(data - CODEC_MAY_USE_DATA)
    assert "autoenc.sar.radiometry" in loaded and "autoenc.sar.scene_input" in loaded


def test_sar_stands_on_numpy_without_torch() -> None:
    loaded = _modules_after(SAR_IMPORTS)
    heavy = [m for m in loaded if m.split(".")[0] in ("torch", "lightning", "torchmetrics")]
    assert heavy == []
    assert not [m for m in loaded if m.startswith("autoenc.data")]
