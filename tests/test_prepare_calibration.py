# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``--calibration`` applies to the amplitude files of a mixed input (issue 13, item 2).

The scenes are written with rasterio directly (not autoenc's writer): one uint16 amplitude
file holding ``DN = rint(sqrt(σ⁰) · 500)`` and one float32 file holding σ⁰ itself, so with
``--calibration 500`` both must reach the dataset as the same σ⁰.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from autoenc.cli import main
from autoenc.data.dataset_format import read_manifest
from autoenc.data.patches import PatchDataset
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.scene_input import open_input

A = 500.0
N, P = 64, 16
NOT_APPLIED = {
    "method": "n/a",
    "requested": "500",
    "reason": "intensity input: --calibration applies to amplitude DN",
}


def _sigma0(seed: int, speckle_seed: int | None = None) -> np.ndarray:
    """Blocky reflectivity -12..-2 dB with 4.4-look Gamma speckle, linear σ⁰ (N, N).

    ``speckle_seed`` draws another speckle over the same reflectivity.
    """
    rng = np.random.default_rng(seed)
    refl_db = np.repeat(np.repeat(rng.uniform(-12.0, -2.0, (N // 8, N // 8)), 8, 0), 8, 1)
    if speckle_seed is not None:
        rng = np.random.default_rng(speckle_seed)
    return 10 ** (refl_db / 10) * rng.gamma(4.4, 1 / 4.4, (N, N))


def _write(path: Path, a: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", height=N, width=N, count=1, dtype=a.dtype.name,
        crs=CRS.from_epsg(32633), transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5.2e6),
    ) as f:  # fmt: skip
        f.write(a, 1)
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``dn.tif`` (uint16 amplitude) and ``s0.tif`` (float32 σ⁰), same σ⁰."""
    folder = tmp_path_factory.mktemp("mixed")
    s0 = _sigma0(3)
    _write(folder / "dn.tif", np.rint(np.sqrt(s0) * A).astype(np.uint16))
    _write(folder / "s0.tif", s0.astype(np.float32))
    return folder


def _prepare(inputs: list[Path], out: Path, *extra: str) -> int:
    args = ["prepare", *map(str, inputs), "--out", str(out), "--patch-size", str(P)]
    return main([*args, "--db-window=-25,5", "--min-std-db", "0", "--quiet", *extra])


def _patch_db(root: Path) -> dict[str, dict[tuple[int, int], np.ndarray]]:
    """Scene -> patch origin -> the patch's dB values (float64, P x P)."""
    m = read_manifest(root)
    norm = Normalisation.from_dict(m["normalisation"])
    ds = PatchDataset(root, m["shards"])
    out: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    for i in range(len(ds)):
        shard, off = ds.locate(i)
        y, x = m["shards"][shard]["origins"][off]
        out.setdefault(ds.scene_of(i), {})[(y, x)] = norm.from_codes(ds[i]["image"][0].numpy())
    return out


def test_mixed_folder_prepares_with_one_constant(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert _prepare([mixed], out, "--calibration", "500") == 0
    m = read_manifest(out)
    dn, s0 = m["scenes"]["dn"], m["scenes"]["s0"]
    assert dn["input_kind"] == "amplitude" and dn["units"] == "sigma0" and dn["calibrated"]
    assert dn["calibration"] == {"method": "constant", "A": A, "formula": "DN^2 / A^2"}
    assert s0["input_kind"] == "intensity" and s0["units"] == "linear intensity"
    assert s0["calibration"] == NOT_APPLIED and s0["calibrated"]
    # The same σ⁰ reaches the dataset from both files: patch by patch, within the DN rounding
    # (|d dB| <= 20 log10(1 + 0.5 / DN), DN >= 57 here: 0.08 dB) and half a code step
    # (measured: patch means within 0.002 dB, pixels within 0.058 dB).
    db = _patch_db(out)
    assert set(db["dn"]) == set(db["s0"]) and len(db["dn"]) == (N // P) ** 2
    for origin, a in db["dn"].items():
        b = db["s0"][origin]
        assert abs(a.mean() - b.mean()) < 0.01, origin
        assert np.abs(a - b).max() < 0.1, origin
    all_a = np.concatenate([a.ravel() for a in db["dn"].values()])
    all_b = np.concatenate([b.ravel() for b in db["s0"].values()])
    assert abs(all_a.mean() - all_b.mean()) < 0.01 and abs(all_a.std() - all_b.std()) < 0.01


def test_dn_of_another_speckle_has_the_same_statistics(mixed: Path, tmp_path: Path) -> None:
    # Another speckle draw over the same reflectivity: equal dB statistics within speckle
    # tolerance (4.4 looks: a 64 x 64 scene's mean dB scatters by ~0.035 dB, so the difference
    # of two by ~0.05 dB; seeds 5..11 measured -0.08..+0.03 dB, std -0.05..+0.07 dB).
    folder = tmp_path / "other"
    _write(folder / "dn2.tif", np.rint(np.sqrt(_sigma0(3, speckle_seed=5)) * A).astype("u2"))
    _write(folder / "s0.tif", _sigma0(3).astype(np.float32))
    out = tmp_path / "ds"
    assert _prepare([folder], out, "--calibration", "500") == 0
    db = _patch_db(out)
    a = np.concatenate([v.ravel() for v in db["dn2"].values()])
    b = np.concatenate([v.ravel() for v in db["s0"].values()])
    assert abs(a.mean() - b.mean()) < 0.15 and abs(a.std() - b.std()) < 0.3


def test_constant_without_an_amplitude_file_is_refused(
    mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ds"
    assert _prepare([mixed / "s0.tif"], out, "--calibration", "500") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("autoenc prepare: error: ")
    assert "--calibration 500" in err and "no input scene is amplitude" in err
    assert "intensity" in err and not (out / "manifest.json").exists()
    # auto and none are not explicit: a float-only folder prepares as before.
    for spec in ("auto", "none"):
        assert _prepare([mixed / "s0.tif"], tmp_path / spec, "--calibration", spec) == 0
        info = read_manifest(tmp_path / spec)["scenes"]["s0"]
        assert info["calibration"] == {"method": "n/a"}


def test_open_input_records_a_constant_it_does_not_apply(mixed: Path) -> None:
    reader, conv, info = open_input(mixed / "s0.tif", calibration="500")
    with reader:
        assert info["input_kind"] == "intensity" and info["calibration"] == NOT_APPLIED
        assert not conv.calibration.calibrated  # nothing applied: the values are σ⁰ already
        json.dumps(info)  # a manifest entry
    reader, conv, info = open_input(mixed / "dn.tif", calibration="500")
    with reader:
        assert info["calibration"]["A"] == A and conv.calibration.constant == A
    with pytest.raises(ValueError, match="calibration constant must be finite and > 0"):
        open_input(mixed / "s0.tif", calibration="-1")  # a typo fails on float files too
