# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``autoenc prepare`` on tiny generated GeoTIFFs: kinds, masks, window, split, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from make_geotiffs import H, W, calibration_a, make_geotiffs
from oracles import invalid_oracle

from autoenc.cli import main
from autoenc.data import patchify
from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.patches import PatchDataset
from autoenc.data.prepare import PrepareConfig, prepare
from autoenc.sar.geotiff import SceneError

P = 16


@pytest.fixture(scope="module")
def tifs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_geotiffs(tmp_path_factory.mktemp("tifs"))


def run(inputs: list[Path], out: Path, **kw: Any) -> dict[str, Any]:
    kw = {"patch_size": P, "min_std_db": 0.0, **kw}
    prepare(inputs, out, PrepareConfig(**kw))
    return read_manifest(out)


def expected_invalid(path: Path, band: int = 1, kind: str = "intensity") -> np.ndarray:
    """Invalid pixels of a file by the independent oracle."""
    with rasterio.open(path) as f:
        return invalid_oracle(f.read(band), f.nodata, linear=kind != "db")


def patches_of(root: Path) -> list[tuple[str, list[int], np.ndarray, np.ndarray]]:
    """(scene, origin, codes (P, P), valid (P, P)) of every stored patch."""
    m = read_manifest(root)
    ds = PatchDataset(root, m["shards"])
    out = []
    for i in range(len(ds)):
        shard, off = ds.locate(i)
        origin = m["shards"][shard]["origins"][off]
        out.append((ds.scene_of(i), origin, ds[i]["image"][0].numpy(), ds.mask(i)[0].numpy()))
    return out


def sigma0_db(path: Path) -> np.ndarray:
    with rasterio.open(path) as f:
        a = f.read(1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 10 * np.log10(np.maximum(a, 1e-3))


def codes_of(db: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.rint(np.clip((db - lo) / (hi - lo), 0, 1) * 65535)


@pytest.mark.parametrize("name", ["sigma0", "db", "grd"])
def test_no_invalid_pixel_is_valid_in_any_patch(
    name: str, tifs: dict[str, Path], tmp_path: Path
) -> None:
    kind = "db" if name == "db" else "intensity"
    m = run([tifs[name]], tmp_path / "ds")
    bad = expected_invalid(tifs[name], kind=kind)
    sid = tifs[name].stem
    info = m["scenes"][sid]
    px = info["pixels"]
    assert px["total"] == H * W
    assert px["valid"] == int((~bad).sum())
    assert px["zero_border"] > 0 and info["valid_fraction"] == pytest.approx(
        (~bad).mean(), abs=1e-6
    )
    found = patches_of(tmp_path / "ds")
    assert found, "some patches must pass the filter"
    for _, (y, x), _codes, valid in found:
        np.testing.assert_array_equal(valid, ~bad[y : y + P, x : x + P])
        assert valid.mean() >= 0.9
    # The filter's counts match the oracle: a candidate is rejected iff < 90 % valid.
    ny, nx = H // P, W // P
    want_bad = sum(
        (~bad[i * P : (i + 1) * P, j * P : (j + 1) * P]).mean() < 0.9
        for i in range(ny)
        for j in range(nx)
    )
    assert info["patches"]["candidates"] == ny * nx
    assert info["patches"]["rejected"]["invalid"] == want_bad
    assert info["patches"]["accepted"] == ny * nx - want_bad == len(found)


def test_sigma0_reason_counts_and_values(tifs: dict[str, Path], tmp_path: Path) -> None:
    m = run([tifs["sigma0"]], tmp_path / "ds", db_window=(-25.0, 5.0))
    info = m["scenes"]["sigma0_crs"]
    assert info["input_kind"] == "intensity" and "all >= 0" in info["input_kind_reason"]
    assert info["georef"] == "crs+transform" and "32633" in info["crs_wkt"]
    assert info["transform"][:3] == [10.0, 0.0, 500000.0]
    px = info["pixels"]
    assert px["nodata"] == 16 and px["nonfinite"] == 9 + 2 and px["nonpositive"] == 3 + 1
    db = sigma0_db(tifs["sigma0"])
    for _, (y, x), codes, valid in patches_of(tmp_path / "ds"):
        want = codes_of(np.maximum(db[y : y + P, x : x + P], -30.0), -25.0, 5.0)
        assert np.abs(codes[valid].astype(np.float64) - want[valid]).max() <= 1
        if (~valid).any():  # invalid pixels hold the mean of the valid codes
            assert np.ptp(codes[~valid]) == 0
            assert abs(float(codes[~valid][0]) - codes[valid].mean()) <= 1


def test_amplitude_gcps_raw_constant_and_lut(tifs: dict[str, Path], tmp_path: Path) -> None:
    raw = run([tifs["grd"]], tmp_path / "raw", calibration="none")
    sid = "s1a-iw-grd-vv-tiny"
    info = raw["scenes"][sid]
    assert info["input_kind"] == "amplitude" and info["dtype"] == "uint16"
    assert info["georef"] == "gcps" and info["gcps"] == 4 and info["crs_wkt"] is None
    assert info["units"] == "raw DN^2" and info["calibrated"] is False
    assert info["polarisation"] == "VV"
    lut = run([tifs["grd"]], tmp_path / "lut", calibration="auto", db_window=(-25.0, 5.0))
    info = lut["scenes"][sid]
    assert (
        info["calibration"]["method"] == "lut" and info["units"] == "sigma0" and info["calibrated"]
    )
    with rasterio.open(tifs["grd"]) as f:
        dn = f.read(1).astype(np.float64)
    with np.errstate(divide="ignore"):
        sigma0_db_ = 20 * np.log10(dn) - 20 * np.log10(calibration_a())
    for _, (y, x), codes, valid in patches_of(tmp_path / "lut"):
        want = codes_of(sigma0_db_[y : y + P, x : x + P], -25.0, 5.0)
        assert np.abs(codes[valid] - want[valid]).max() <= 2  # float32 dB
    const = run([tifs["grd"]], tmp_path / "const", calibration="500", db_window=(-25.0, 5.0))
    assert const["scenes"][sid]["calibration"] == {
        "method": "constant",
        "A": 500.0,
        "formula": "DN^2 / A^2",
    }
    # DN^2/A^2 in dB is raw dB - 20 log10(A): the percentile window shifts by exactly that.
    shifted = run([tifs["grd"]], tmp_path / "shift", calibration="500")
    lo_raw, hi_raw = raw["normalisation"]["vmin_db"], raw["normalisation"]["vmax_db"]
    off = 20 * np.log10(500.0)
    assert shifted["normalisation"]["vmin_db"] == pytest.approx(lo_raw - off, abs=0.02)
    assert shifted["normalisation"]["vmax_db"] == pytest.approx(hi_raw - off, abs=0.02)


def test_db_input_and_band_selection(tifs: dict[str, Path], tmp_path: Path) -> None:
    m = run([tifs["db"]], tmp_path / "db")
    assert (
        m["scenes"]["db"]["input_kind"] == "db" and "dB" in m["scenes"]["db"]["input_kind_reason"]
    )
    with pytest.raises(SceneError, match=r"dual\.tif has 2 bands.*VV.*VH"):
        run([tifs["dual"]], tmp_path / "nob")
    vh = run([tifs["dual"]], tmp_path / "vh", band="VH", db_window=(-30.0, 5.0))
    two = run([tifs["dual"]], tmp_path / "two", band=2, db_window=(-30.0, 5.0))
    vv = run([tifs["dual"]], tmp_path / "vv", band="vv", db_window=(-30.0, 5.0))
    assert vh["scenes"]["dual"]["polarisation"] == "VH" and vh["scenes"]["dual"]["band"] == 2
    assert vv["scenes"]["dual"]["polarisation"] == "VV" and vv["scenes"]["dual"]["band"] == 1
    assert [s["sha256"] for s in vh["shards"]] == [s["sha256"] for s in two["shards"]]
    a = np.stack([c for *_, c, _ in patches_of(tmp_path / "vh")]).astype(np.float64)
    b = np.stack([c for *_, c, _ in patches_of(tmp_path / "vv")]).astype(np.float64)
    # VH = 0.2 VV: 10 log10(0.2) = -6.99 dB, i.e. 6.99 / 35 of the code range.
    assert np.median(b - a) / 65535 * 35 == pytest.approx(6.99, abs=0.05)
    with pytest.raises(SceneError, match="no band described as 'HH'"):
        run([tifs["dual"]], tmp_path / "hh", band="HH")


def _copies(tifs: dict[str, Path], d: Path, n: int) -> list[Path]:
    d.mkdir()
    return [Path(shutil.copy(tifs["sigma0"], d / f"scene_{i}.tif")) for i in range(n)]


def test_window_from_train_scenes_only(tifs: dict[str, Path], tmp_path: Path) -> None:
    scenes = _copies(tifs, tmp_path / "in", 3)
    with rasterio.open(scenes[2], "r+") as f:  # the test scene gets absurdly bright values
        a = f.read(1)
        a[a > 0] *= 1e6
        f.write(a, 1)
    split = tmp_path / "split.csv"
    split.write_text("scene,split\nscene_0,train\nscene_1.tif,val\nscene_2,test\n")
    m = run([tmp_path / "in"], tmp_path / "ds", split_file=str(split))
    alone = run([scenes[0]], tmp_path / "alone")
    assert m["normalisation"] == alone["normalisation"]
    assert m["window"]["train_scenes"] == ["scene_0"]
    assert {s: v["split"] for s, v in m["scenes"].items()} == {
        "scene_0": "train",
        "scene_1": "val",
        "scene_2": "test",
    }
    assert (
        m["window"]["test_clip"]["clipped_high"] > 0.9 > m["window"]["train_clip"]["clipped_high"]
    )


def test_split_is_scene_disjoint_and_seeded(tifs: dict[str, Path], tmp_path: Path) -> None:
    _copies(tifs, tmp_path / "in", 10)
    a = run([tmp_path / "in"], tmp_path / "a", seed=3)
    b = run([tmp_path / "in"], tmp_path / "b", seed=3)
    c = run([tmp_path / "in"], tmp_path / "c", seed=4)
    split = {s: v["split"] for s, v in a["scenes"].items()}
    assert split == {s: v["split"] for s, v in b["scenes"].items()}
    assert split != {s: v["split"] for s, v in c["scenes"].items()}
    assert sorted(split.values()).count("train") == 8
    for sh in a["shards"]:  # every patch of a scene sits in that scene's split
        assert sh["file"].startswith(f"shards/{sh['scene_id']}_")
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"scene_0": "train"}))
    with pytest.raises(ValueError, match="does not assign: scene_1"):
        run([tmp_path / "in"], tmp_path / "d", split_file=str(missing))


def test_resume_after_crash_mid_scene(
    tifs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copies(tifs, tmp_path / "in", 3)
    opts = {"shard_size": 2, "db_window": (-25.0, 5.0)}
    clean = run([tmp_path / "in"], tmp_path / "clean", **opts)
    real = patchify.write_shard
    calls = {"n": 0}

    def crash(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 12:  # the middle of the second scene
            raise KeyboardInterrupt("simulated crash")
        return real(*a, **k)

    monkeypatch.setattr(patchify, "write_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        run([tmp_path / "in"], tmp_path / "resumed", **opts)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    assert not list((tmp_path / "resumed").rglob("*.tmp"))
    monkeypatch.setattr(patchify, "write_shard", real)
    resumed = run([tmp_path / "in"], tmp_path / "resumed", **opts)
    assert [(s["file"], s["sha256"], s["mask_sha256"]) for s in resumed["shards"]] == [
        (s["file"], s["sha256"], s["mask_sha256"]) for s in clean["shards"]
    ]
    assert resumed["scenes"] == clean["scenes"]
    validate_shards(tmp_path / "resumed", resumed, check_hash=True)
    # A third run finds everything done and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed" / "shards").iterdir()}
    report = prepare(
        [tmp_path / "in"], tmp_path / "resumed", PrepareConfig(patch_size=P, min_std_db=0.0, **opts)
    )
    assert report.skipped == 3
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "resumed" / "shards").iterdir()}


def test_corrupt_scene_stop_and_skip(
    tifs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _copies(tifs, tmp_path / "in", 3)
    data = good[1].read_bytes()
    (tmp_path / "in" / "broken.tif").write_bytes(data[: len(data) // 2])
    out = tmp_path / "ds"
    assert (
        main(["prepare", str(tmp_path / "in"), "--out", str(out), "--quiet", "--patch-size", "16"])
        == 2
    )
    err = capsys.readouterr().err
    assert "broken.tif" in err and "Traceback" not in err
    assert not (out / "manifest.json").exists()
    code = main(
        [
            "prepare",
            str(tmp_path / "in"),
            "--out",
            str(out),
            "--quiet",
            "--patch-size",
            "16",
            "--on-error",
            "skip",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "broken.tif" in err and "1 scene(s) failed" in err
    m = read_manifest(out)
    assert sorted(m["scenes"]) == ["scene_0", "scene_1", "scene_2"]
    assert [f["path"].endswith("broken.tif") for f in m["failures"]] == [True]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.tif").write_bytes(b"II*\x00not a tiff")
    assert main(["prepare", str(tmp_path / "junk"), "--out", str(tmp_path / "j"), "--quiet"]) == 2
    assert "x.tif" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_quality_filter_counts_flat_and_saturated(tmp_path: Path) -> None:
    """Patch rows: flat constant dB, saturated above the window, speckled; one of each kind."""
    rng = np.random.default_rng(0)
    db = (-10 + 2.5 * rng.standard_normal((3 * P, 4 * P))).astype(np.float32)
    db[:P] = -10.0  # flat: std 0 dB
    db[P : 2 * P] = 20.0 + rng.standard_normal((P, 4 * P))  # far above a -25..5 window
    db[P : 2 * P, :3] = -10.0  # ... but not all of it: 3 columns of 16 are inside
    path = tmp_path / "q.tif"
    with rasterio.open(path, "w", driver="GTiff", height=3 * P, width=4 * P, count=1,
                       dtype="float32") as f:  # fmt: skip
        f.write(db + 0.0, 1)
        f.set_band_unit(1, "dB")
    prepare([path], tmp_path / "ds", PrepareConfig(patch_size=P, db_window=(-25.0, 5.0)))
    info = read_manifest(tmp_path / "ds")["scenes"]["q"]
    # The left column has no zero border here: every column is non-zero.
    assert info["patches"] == {
        "candidates": 12,
        "accepted": 4,
        "rejected": {"invalid": 0, "saturated": 4, "flat": 4},
    }


def test_failed_rerun_keeps_earlier_dataset(tifs: dict[str, Path], tmp_path: Path) -> None:
    _copies(tifs, tmp_path / "in", 3)
    run([tmp_path / "in"], tmp_path / "ds")
    (tmp_path / "in" / "scene_1.tif").write_bytes(b"II*\x00broken")
    with pytest.raises(SceneError, match="scene_1.tif"):
        run([tmp_path / "in"], tmp_path / "ds")
    validate_shards(tmp_path / "ds", read_manifest(tmp_path / "ds"), check_hash=True)


def test_refuses_foreign_output_folder(tifs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not written by autoenc prepare"):
        run([tifs["sigma0"]], tmp_path / "ds")


def test_synth_geotiff_cli(tmp_path: Path) -> None:
    out = tmp_path / "scenes"
    assert (
        main(["synth", "--geotiff", "--out", str(out), "--scenes", "2", "--size", "96", "--quiet"])
        == 0
    )
    a, b = sorted(out.glob("*.tif"))
    with rasterio.open(a) as f:
        assert f.crs is not None and f.dtypes[0] == "float32"
        img = f.read(1)
        assert np.isnan(img).any() and (img[:, 0] == 0).all()
    with rasterio.open(b) as f:
        assert f.crs is None and len(f.gcps[0]) == 16
    assert (
        main(
            [
                "synth",
                "--geotiff",
                "--kind",
                "amplitude",
                "--out",
                str(tmp_path / "amp"),
                "--scenes",
                "1",
                "--size",
                "64",
                "--quiet",
            ]
        )
        == 0
    )
    with rasterio.open(next((tmp_path / "amp").glob("*.tif"))) as f:
        assert f.dtypes[0] == "uint16"


def test_prepared_dataset_trains(
    tifs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copies(tifs, tmp_path / "in", 3)
    assert (
        main(
            [
                "prepare",
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "ds"),
                "--quiet",
                "--patch-size",
                "16",
                "--min-std-db",
                "0",
            ]
        )
        == 0
    )
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "fit",
            "--model.model.class_path=autoenc.models.ResidualAutoencoder",
            "--model.model.init_args.base_channels=4",
            f"--data.root={tmp_path / 'ds'}",
            "--data.batch_size=4",
            "--data.num_workers=0",
            "--trainer.max_steps=2",
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_model_summary=false",
            "--checkpoint.dirpath=run/ckpt",
            "--trainer.logger=false",
            "--seed_everything=0",
        ]
    )
    assert code == 0 and (tmp_path / "run" / "ckpt" / "last.ckpt").is_file()
