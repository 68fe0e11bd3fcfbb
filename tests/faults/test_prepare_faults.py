# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Faults of ``autoenc prepare`` and the input side (issue 12, items 2 and 9 and smaller ones).

* the input matrix / the auto-kind boundary: every float σ⁰/γ⁰/dB variant either resolves to
  the right kind, with a window that matches its true dB values, or is refused with one line
  naming the file and ``--input-kind``; never a silent wrong kind;
* a dB window that cannot be SAR backscatter stops the run (exit 2), not exit 0 with 0 patches;
* scenes smaller than the patch are named; no patches for training is exit 2 without a manifest;
  a datamodule over an empty split names the split, not a crop size;
* the manifest goes before anything of an earlier dataset (``--no-resume`` included), a failing
  ``--no-resume`` run leaves the earlier dataset intact, dead runs' temp files are removed, and a
  folder another run is writing is refused.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prepare_fixtures import noise_subtracted, reflectivity, sigma0_scenes, write_tif

from autoenc.cli import main
from autoenc.data.datamodule import PatchDataModule
from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.prepare import PrepareConfig, prepare
from autoenc.sar.scene_input import open_input

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

N = 128  # side of the matrix scenes
Gen = Callable[[np.random.Generator], np.ndarray]


def _db(a: np.ndarray) -> np.ndarray:
    return 10 * np.log10(a)


def _with_negatives(share: float, lo: float, hi: float) -> Gen:
    """σ⁰ with ``share`` of its pixels set to values uniform in ``-hi..-lo``."""

    def gen(rng: np.random.Generator) -> np.ndarray:
        a = reflectivity(rng, N, N)
        m = rng.random(a.shape) < share
        a[m] = -rng.uniform(lo, hi, int(m.sum()))
        return a

    return gen


def _borders(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[:, :9] = 0.0  # untagged zero border
    a[:, -3:] = 0.0
    a[40:44, 50:70] = np.nan
    return a


# name -> (values, expected kind or None for a refusal, write options)
MATRIX: dict[str, tuple[Gen, str | None, dict[str, Any]]] = {
    "sigma0 linear clean": (lambda r: reflectivity(r, N, N), "intensity", {}),
    "sigma0 1% at -0.001 (the issue)": (_with_negatives(0.01, 0.001, 0.001), "intensity", {}),
    "sigma0 5% small negatives": (_with_negatives(0.05, 0.0, 0.005), "intensity", {}),
    "sigma0 noise-subtracted": (
        lambda r: noise_subtracted(r, reflectivity(r, N, N, -30, -5)),
        "intensity",
        {},
    ),
    "sigma0 dark noise-subtracted (~28% negative)": (
        lambda r: noise_subtracted(r, reflectivity(r, N, N, -35, -20)),
        "intensity",
        {},
    ),
    "sigma0 NaN holes, zero borders, 1% negatives": (
        lambda r: _borders(_with_negatives(0.01, 0.0, 0.003)(r)),
        "intensity",
        {},
    ),
    "sigma0 tagged nodata -9999, noise-subtracted": (
        lambda r: np.where(
            np.arange(N)[None, :] < 10, -9999.0, noise_subtracted(r, reflectivity(r, N, N))
        ),
        "intensity",
        {"nodata": -9999.0},
    ),
    "gamma0 linear (-25..8 dB) noise-subtracted (~5% negative)": (
        lambda r: noise_subtracted(r, reflectivity(r, N, N, -25, 8), -18.0),
        "intensity",
        {},
    ),
    "linear DN^2 scale with small negatives": (
        lambda r: np.where(r.random((N, N)) < 0.02, -50.0, 1e6 * reflectivity(r, N, N)),
        "intensity",
        {},
    ),
    "0.09% stray negatives of -0.5 (rare)": (_with_negatives(0.0009, 0.5, 0.5), "intensity", {}),
    "0.2% negatives of -0.5, large for the signal": (_with_negatives(0.002, 0.5, 0.5), None, {}),
    "sigma0 dB -25..5": (lambda r: _db(reflectivity(r, N, N, -25, 5)), "db", {}),
    "sigma0 dB with a few positives": (lambda r: _db(reflectivity(r, N, N, -25, 0)), "db", {}),
    "sigma0 dB with NaN holes and zero borders": (
        lambda r: _borders(_db(reflectivity(r, N, N, -22, 3))),
        "db",
        {},
    ),
    "dB around 0 dB (half negative)": (lambda r: _db(reflectivity(r, N, N, -2, 2)), "db", {}),
    "sigma0 dB with a 'dB' unit": (lambda r: _db(reflectivity(r, N, N)), "db", {"units": "dB"}),
    "bright dB (27% negative)": (lambda r: _db(reflectivity(r, N, N, -5, 15)), None, {}),
    "urban dB (5% negative)": (lambda r: _db(reflectivity(r, N, N, 0, 20)), None, {}),
    "noise only (half negative)": (
        lambda r: noise_subtracted(r, reflectivity(r, N, N, -40, -30)),
        None,
        {},
    ),
    "signed difference image": (lambda r: r.normal(0.0, 300.0, (N, N)), None, {}),
    "uniform -0.5..0.5": (lambda r: r.uniform(-0.5, 0.5, (N, N)), None, {}),
    "amplitude uint16 DN": (
        lambda r: np.clip(np.rint(np.sqrt(reflectivity(r, N, N)) * 500), 1, 65535).astype(
            np.uint16
        ),
        "amplitude",
        {},
    ),
}


def _true_db(a: np.ndarray, kind: str, nodata: float | None) -> np.ndarray:
    """The valid dB values by the definition of each kind (floor -30 dB), an oracle."""
    a = np.asarray(a, dtype=np.float64)
    ok = np.isfinite(a) & (a != 0)
    if nodata is not None:
        ok &= a != nodata
    if kind == "db":
        return np.maximum(a[ok], -30.0)
    ok &= a > 0
    scale = 20.0 if kind == "amplitude" else 10.0
    return np.maximum(scale * np.log10(a[ok]), -30.0)


@pytest.mark.parametrize("name", list(MATRIX))
def test_input_matrix_resolves_or_refuses(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 2: the right kind and a window matching the true dB values, or a clear refusal."""
    gen, want, opts = MATRIX[name]
    values = gen(np.random.default_rng(sorted(MATRIX).index(name)))
    tif = write_tif(tmp_path / "in" / "scene.tif", values, **opts)
    out = tmp_path / "ds"
    code = main(
        ["prepare", str(tif), "--out", str(out), "--quiet", "--patch-size", "32"]
        + ["--min-valid", "0", "--calibration", "none" if want == "amplitude" else "auto"]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if want is None:
        assert code == 2, f"{name}: expected a refusal, got exit {code}"
        line = [x for x in err.splitlines() if "error" in x]
        assert len(line) == 1 and "scene.tif" in line[0] and "--input-kind" in line[0], err
        assert "cannot tell dB from linear intensity" in line[0]
        assert not (out / "manifest.json").exists()
        return
    assert code == 0, f"{name}: exit {code}: {err}"
    m = read_manifest(out)
    info = m["scenes"]["scene"]
    assert info["input_kind"] == want, f"{name}: {info['input_kind_reason']}"
    truth = _true_db(values.astype(np.float32), want, opts.get("nodata"))
    lo, hi = np.percentile(truth, [0.1, 99.9])
    norm = m["normalisation"]
    assert abs(norm["vmin_db"] - lo) < 0.5 and abs(norm["vmax_db"] - hi) < 0.5, (norm, lo, hi)
    assert info["num_patches"] > 0


def test_open_input_shared_with_compress(tmp_path: Path) -> None:
    """Item 2 for compress: ``open_input`` (compress's reader too) reads the issue's scene right."""
    rng = np.random.default_rng(5)
    a = reflectivity(rng, N, N)
    a[rng.random(a.shape) < 0.01] = -0.001
    reader, conv, info = open_input(write_tif(tmp_path / "issue.tif", a))
    with reader:
        assert conv.kind == info["input_kind"] == "intensity"
        db = conv.to_db(reader.read(0, 0, N, N), 0, 0)
    ok = a > 0
    np.testing.assert_allclose(db[ok], np.maximum(10 * np.log10(a[ok]), -30), atol=1e-4)
    amb = write_tif(tmp_path / "bright.tif", _db(reflectivity(rng, N, N, -5, 15)))
    with pytest.raises(ValueError, match=r"bright\.tif: cannot tell dB .* --input-kind"):
        open_input(amb)


def test_implausible_window_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 2's guard: linear σ⁰ read as dB (window -0.0..1.5) or a window missing the data."""
    rng = np.random.default_rng(2)
    lin = write_tif(tmp_path / "lin" / "lin.tif", reflectivity(rng, N, N))
    args = ["--quiet", "--patch-size", "32"]
    code = main(["prepare", str(lin), "--out", str(tmp_path / "a"), "--input-kind", "db", *args])
    err = capsys.readouterr().err
    assert code == 2 and "implausible for SAR backscatter" in err and "span only" in err, err
    assert "lin as db" in err and not (tmp_path / "a" / "manifest.json").exists()
    assert len(err.strip().splitlines()) == 1
    code = main(["prepare", str(lin), "--out", str(tmp_path / "c"), "--input-kind", "db",
                 "--db-window=-25,5", "--min-std-db", "0", *args])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "span only" in err, err  # a fixed window does not hide it
    db = write_tif(tmp_path / "db" / "db.tif", _db(reflectivity(rng, N, N)), units="dB")
    code = main(["prepare", str(db), "--out", str(tmp_path / "b"), "--db-window", "10,40", *args])
    err = capsys.readouterr().err
    assert code == 2 and "holds only 0.0% of the training pixels" in err, err


def test_scenes_smaller_than_the_patch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Smaller item: 100x100 and 1x1000 scenes are named; no train patches is exit 2."""
    rng = np.random.default_rng(3)
    write_tif(tmp_path / "in" / "square.tif", reflectivity(rng, 100, 100))
    write_tif(tmp_path / "in" / "line.tif", reflectivity(rng, 8, 1000)[:1])
    out = tmp_path / "ds"
    code = main(["prepare", str(tmp_path / "in"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no patches" in err and "Traceback" not in err, err
    assert "square (100x100)" in err and "line (1x1000)" in err
    assert not (out / "manifest.json").exists()
    warned = [r.getMessage() for r in caplog.records if "smaller than the patch" in r.getMessage()]
    assert len(warned) == 2 and any("square" in w for w in warned)
    # Beside a scene that yields patches, a small scene is a warning, in the manifest too.
    write_tif(tmp_path / "in" / "big.tif", reflectivity(rng, 300, 300))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"big": "train", "square": "val", "line": "test"}))
    report = prepare(
        [tmp_path / "in"], out, PrepareConfig(patch_size=128, split_file=str(split), min_std_db=0)
    )
    m = read_manifest(out)
    assert m["scenes"]["big"]["num_patches"] > 0
    assert sum("smaller than the patch size 128x128" in w for w in report.warnings) == 2
    assert any("val split has 1 scene(s) but no patches" in w for w in m["warnings"])
    # Redoing it with a patch no scene holds: exit 2, and the folder no longer reads as a dataset.
    code = main(["prepare", str(tmp_path / "in"), "--out", str(out), "--quiet",
                 "--patch-size", "512", "--split-file", str(split)])  # fmt: skip
    assert code == 2 and not (out / "manifest.json").exists()


def test_datamodule_names_the_empty_split(tmp_path: Path) -> None:
    """Smaller item: an empty train split is named, not 'crop_size=16 must be in 1..0'."""
    sigma0_scenes(tmp_path / "in", 1, seed=4, h=96, w=96)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"scene_0": "val"}))
    cfg = PrepareConfig(patch_size=32, split_file=str(split), db_window=(-25.0, 5.0))
    prepare([tmp_path / "in"], tmp_path / "ds", cfg)
    dm = PatchDataModule(str(tmp_path / "ds"), crop_size=16, num_workers=0)
    dm.setup("fit")
    assert len(dm.datasets["val"]) > 0
    with pytest.raises(ValueError, match=r"split 'train' of dataset '.*ds' has no patches"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="crop_size=64 exceeds the patch size 32"):
        PatchDataModule(str(tmp_path / "ds"), crop_size=64, num_workers=0).setup("fit")


CFG = PrepareConfig(patch_size=16, min_std_db=0.0, shard_size=4, db_window=(-25.0, 5.0))


def _complete(tmp_path: Path, n: int = 3) -> tuple[Path, Path, dict[str, Any]]:
    """A complete dataset of ``n`` scenes prepared with :data:`CFG`: (inputs, out, manifest)."""
    sigma0_scenes(tmp_path / "in", n, seed=6)
    out = tmp_path / "ds"
    prepare([tmp_path / "in"], out, CFG)
    return tmp_path / "in", out, read_manifest(out)


@pytest.mark.parametrize("resume", [False, True])
def test_manifest_goes_before_any_earlier_file(
    resume: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: while manifest.json exists, no file it lists is deleted or replaced."""
    inputs, out, _ = _complete(tmp_path)
    listed = {
        (out / s[k]).resolve() for s in read_manifest(out)["shards"] for k in ("file", "mask_file")
    }
    manifest = out / "manifest.json"
    violations: list[str] = []

    def guard(module: Any, name: str, is_listed: Callable[..., bool]) -> None:
        real = getattr(module, name)

        def spy(*a: Any, **k: Any) -> Any:
            if manifest.exists() and is_listed(*a, **k):
                violations.append(f"{name}{a[:2]} while the manifest exists")
            return real(*a, **k)

        monkeypatch.setattr(module, name, spy)

    def hits(*a: Any, **k: Any) -> bool:
        paths = [Path(os.fsdecode(p)) for p in a[:2] if isinstance(p, str | bytes | os.PathLike)]
        return any(p.resolve() in listed or p.resolve().parent.name in ("shards", "masks")
                   for p in paths if p.is_absolute())  # fmt: skip

    guard(shutil, "rmtree", lambda p, *a, **k: Path(p).name in ("shards", "masks"))
    for fn in ("unlink", "remove", "replace", "rename"):
        guard(os, fn, hits)
    args = ["prepare", str(inputs), "--out", str(out), "--quiet", "--patch-size", "16"]
    args += ["--min-std-db", "0", "--shard-size", "4", "--db-window=-20,0"]
    assert main([*args, "--resume" if resume else "--no-resume"]) == 0
    assert not violations, violations
    m = read_manifest(out)
    assert m["normalisation"]["vmin_db"] == -20.0
    validate_shards(out, m, check_hash=True)


def test_failed_no_resume_keeps_the_earlier_dataset(tmp_path: Path) -> None:
    """Item 9 / README: a --no-resume run that fails in pass 1 leaves the dataset intact."""
    inputs, out, before = _complete(tmp_path)
    (inputs / "scene_1.tif").write_bytes(b"II*\x00broken")
    code = main(["prepare", str(inputs), "--out", str(out), "--quiet", "--no-resume",
                 "--patch-size", "16", "--db-window=-20,0"])  # fmt: skip
    assert code == 2
    assert read_manifest(out) == before
    validate_shards(out, before, check_hash=True)


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    """Smaller item: hidden temp files of killed runs go at the next run; real files stay."""
    inputs, out, before = _complete(tmp_path)
    stale = [
        out / ".manifest.json.k1l3d.tmp",
        out / "shards" / ".scene_0_000.npy.abcd1234.tmp",
        out / "masks" / ".scene_0_000.npy.x_y.tmp",
        out / ".prepare" / "scan" / ".scene_1.npz.q.tmp",
        out / ".prepare" / "scenes" / ".scene_2.json.r.tmp",
    ]
    for f in stale:
        f.write_bytes(b"\0" * 1000)
    keep = out / "notes.tmp"  # not a hidden temp name: not ours to delete
    keep.write_text("mine")
    report = prepare([inputs], out, CFG)
    assert report.stale_removed == len(stale) and report.skipped == 3
    assert not [f for f in stale if f.exists()] and keep.exists()
    assert read_manifest(out)["shards"] == before["shards"]


def test_a_folder_being_written_is_refused(tmp_path: Path) -> None:
    """The temp files of a live run are not stale: a second prepare on its folder is refused."""
    inputs, out, before = _complete(tmp_path)
    live = out / "shards" / ".scene_0_001.npy.live.tmp"
    live.write_bytes(b"partial")
    fd = os.open(out / ".prepare" / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["prepare", str(inputs), "--out", str(out), "--quiet", "--no-resume"])
        assert code == 2 and live.exists()
        assert read_manifest(out) == before
    finally:
        os.close(fd)


def test_resume_never_trusts_a_half_rewritten_scene(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the kill battery: a run killed after rewriting a scene's shards, before its new
    record, left the old record; going back to the old window then reused the new shards under
    it (same sizes), and the manifest's hashes no longer matched them."""
    import autoenc.data.prepare as prep

    inputs, out, before = _complete(tmp_path)
    real = prep.patch_scene

    def then_die(*a: Any, **k: Any) -> Any:
        res = real(*a, **k)
        if a[5] == "scene_0":  # scene_id: its shards are rewritten, its record not yet
            raise KeyboardInterrupt("killed")
        return res

    monkeypatch.setattr(prep, "patch_scene", then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare([inputs], out, dataclasses.replace(CFG, db_window=(-20.0, 0.0)))
    monkeypatch.setattr(prep, "patch_scene", real)
    prepare([inputs], out, CFG)  # back to the old window
    m = read_manifest(out)
    validate_shards(out, m, check_hash=True)
    assert m["shards"] == before["shards"]
