# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The per-scene offset (issue 13, item 2): one σ⁰ model for any intensity product.

* :mod:`autoenc.sar.offset` on its own: the record, ``--offset-db`` parsing, the rule and the
  median pass;
* an uncalibrated linear-intensity scene (values about 0..75 dB, the issue's ``|DN|²``
  example) compresses with the shipped σ⁰ model through the offset and comes back: every valid
  pixel outside the model's window within ``step / 2`` dB, the others as well as the same
  scene's calibrated σ⁰ do; with the offset forced to 0 and ``--clip`` the clip warning names
  the fraction.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from autoenc.cli import main
from autoenc.codec.container import ContainerReader
from autoenc.sar.calibration import Calibration
from autoenc.sar.geotiff import SceneReader
from autoenc.sar.offset import (
    LEVEL_BINS,
    OFFSET_LIMIT_DB,
    DbOffset,
    SceneLevels,
    choose_offset,
    parse_offset,
    scene_levels,
)
from autoenc.sar.radiometry import BlockConverter, row_extents

sys.path.insert(0, str(Path(__file__).parent / "faults"))
import aec_craft as ac  # noqa: E402 - tests/faults is not on the path of this folder

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread

WINDOW = (-25.0, 5.0)  # the shipped model's
STEP = 0.05  # the default exception step
GAIN_DB = 50.0  # the uncalibrated product: σ⁰ x 10^5


# ---- the record and the rule ---------------------------------------------------------------


def test_apply_and_undo_are_inverses() -> None:
    rng = np.random.default_rng(0)
    db = rng.uniform(-40, 80, 1000).astype(np.float32)
    for off in (0.0, -47.25, 12.5, OFFSET_LIMIT_DB, -OFFSET_LIMIT_DB):
        o = DbOffset(off)
        back = o.undo(o.apply(db).astype(np.float64))
        np.testing.assert_allclose(back, db, atol=2e-5 * max(1.0, abs(off)))
        assert o.input_floor(-30.0) == -30.0 - off
    for bad in (math.nan, math.inf, OFFSET_LIMIT_DB + 1):
        with pytest.raises(ValueError, match="--offset-db"):
            DbOffset(bad)


def test_parse_offset() -> None:
    assert parse_offset("auto") == "auto" and parse_offset(" Median ") == "median"
    assert parse_offset("-47.5") == -47.5 and parse_offset(3) == 3.0
    for bad in ("none", "estimate", "1e999", "nan", "500", ""):
        with pytest.raises(ValueError, match="--offset-db"):
            parse_offset(bad)


def _levels(db: np.ndarray) -> SceneLevels:
    """The histogram scene_levels would build from these valid dB values."""
    return SceneLevels(np.bincount(LEVEL_BINS.index(np.asarray(db)), minlength=LEVEL_BINS.n))


def test_choose_offset_rule() -> None:
    rng = np.random.default_rng(0)
    speckle = 10 * np.log10(rng.gamma(4.4, 1 / 4.4, 20000))  # GRD speckle in dB
    land = _levels(-13.0 + speckle)  # fits the window: offset 0
    auto = choose_offset("auto", land, WINDOW)
    assert auto.offset_db == 0.0 and "as is" in auto.reason
    raw = choose_offset("auto", _levels(37.0 + speckle), WINDOW)  # uncalibrated |DN|²
    assert -52.0 < raw.offset_db < -40.0  # the whole distribution inside, centred
    inside = (37.0 + speckle + raw.offset_db >= -25) & (37.0 + speckle + raw.offset_db <= 5)
    assert inside.mean() == 1.0 and "100.00%" in raw.reason
    sea = choose_offset("auto", _levels(-28.0 + speckle), WINDOW)  # calm VH sea
    assert 14.0 < sea.offset_db < 22.0
    # land with a dark tail: auto trades the tail's exceptions against the offset
    tail = _levels(np.concatenate([-13.0 + speckle, -27.0 + speckle[:3000]]))
    t = choose_offset("auto", tail, WINDOW)
    assert t.offset_db > 0.5 and "not" in t.reason
    med = choose_offset("median", land, WINDOW)  # the median to the centre, -10 dB
    assert med.offset_db == pytest.approx(-10.0 - land.median_db(), abs=0.011)
    assert choose_offset(-3.0, None, WINDOW).offset_db == -3.0  # given: no pass needed
    assert (
        choose_offset("auto", SceneLevels(np.zeros(LEVEL_BINS.n, np.int64)), WINDOW).offset_db == 0
    )
    with pytest.raises(ValueError, match="exceeds"):
        choose_offset("median", _levels(np.full(10, 250.0)), WINDOW)


def test_scene_levels_pass_counts_the_valid_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (10 ** (rng.uniform(-3, 8, (300, 257)))).astype(np.float32)  # -30..+80 dB
    x[:, :3] = 0.0  # zero border: invalid
    x[100, 100] = np.nan
    tif = ac.write_scene(tmp_path / "m.tif", x)
    with SceneReader(tif) as r:
        first, last = row_extents(r)
        conv = BlockConverter("intensity", None, -30.0, Calibration())
        levels = scene_levels(r, conv, first, last, block_rows=64)
    valid = np.isfinite(x) & (x > 0)
    d = 10 * np.log10(x[valid].astype(np.float64))
    assert levels.n == int(valid.sum())
    assert abs(levels.median_db() - float(np.median(d))) <= 0.01
    cover, offs = levels.coverage(WINDOW), levels.offsets(WINDOW)
    k = int(np.argmin(np.abs(offs - 20.0)))  # offset +20: d in [-45, -15]
    assert abs(int(cover[k]) - int(((d >= -45.0) & (d < -15.0)).sum())) <= 30  # bin edges


# ---- the uncalibrated scene through the shipped model ----------------------------------------


def sigma0_scene(seed: int = 0) -> np.ndarray:
    """128 x 128 float32 σ⁰: speckled land at -19 dB, targets at +10..+30 dB, an area at
    -28 dB and one at -40 dB (below the model's noise floor), 5 NaN pixels."""
    rng = np.random.default_rng(seed)
    s0 = 10 ** (-1.9) * rng.gamma(4.4, 1 / 4.4, (128, 128))
    for (y, x), db in zip([(10, 10), (40, 90), (100, 30)], [10.0, 20.0, 30.0], strict=True):
        s0[y : y + 3, x : x + 3] = 10 ** (db / 10)
    s0[60:76, 10:26] = 10 ** (-2.8)
    s0[5:13, 100:108] = 10 ** (-4.0)
    s0[rng.integers(0, 128, 5), rng.integers(0, 128, 5)] = np.nan
    return s0.astype(np.float32)


def _db(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(a.astype(np.float64))


def _round_trip(tmp: Path, x: np.ndarray, name: str, *extra: str) -> dict[str, Any]:
    tif = ac.write_scene(tmp / f"{name}.tif", x)
    aec, back = tmp / f"{name}.aec", tmp / f"{name}.back.tif"
    assert main(["compress", str(tif), "-o", str(aec), "--device", "cpu", "--quiet",
                 "--overwrite", *extra]) == 0  # fmt: skip
    assert main(["decompress", str(aec), "-o", str(back), "--quiet", "--overwrite"]) == 0
    with ContainerReader(aec) as r:
        header = r.header
    with rasterio.open(back) as f:
        y = f.read(1)
    return {"header": header, "y": y, "bytes": aec.stat().st_size, "tif": tif, "aec": aec}


def test_uncalibrated_intensity_scene_round_trips_through_the_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s0 = sigma0_scene()
    raw = (s0.astype(np.float64) * 10 ** (GAIN_DB / 10)).astype(np.float32)  # about 10..80 dB
    raw[20:24, 20:24] = 1.0  # and a few at 0 dB (30 dB under the darkest σ⁰ area)
    valid = np.isfinite(raw) & (raw > 0)
    d_raw = _db(np.where(valid, raw, 1.0))
    assert d_raw[valid].min() <= 0.5 and d_raw[valid].max() >= 79.0
    cal = _round_trip(tmp_path, s0, "sigma0")
    unc = _round_trip(tmp_path, raw, "raw")
    off = unc["header"]["input"]["offset_db"]
    # auto is shift-equivariant: the product's offset is the σ⁰ scene's minus the gain (the
    # σ⁰ scene's own offset is not 0 here: its -28 and -40 dB areas pull it up)
    cal_off = cal["header"]["input"]["offset_db"]
    assert off == pytest.approx(cal_off - GAIN_DB, abs=0.03)
    d_model = d_raw + off  # what the model saw
    outside = valid & ((d_model < WINDOW[0]) | (d_model > WINDOW[1]))
    err = np.abs(_db(unc["y"]) - d_raw)
    # the targets and the 0 dB pixels stay outside: 0 px outside the tolerance
    assert outside.sum() >= 27 + 16 and err[outside].max() <= STEP / 2 + 1e-4
    assert np.isnan(unc["y"][~valid]).all()
    d_cal = _db(np.where(valid, s0, 1.0))
    inside = valid & ~outside & (d_cal >= WINDOW[0]) & (d_cal <= WINDOW[1])  # both runs' window
    e_unc = float(err[inside].mean())
    e_cal = float(np.abs(_db(cal["y"]) - d_cal)[inside].mean())
    assert abs(e_unc - e_cal) < 0.15, (e_unc, e_cal)  # the model does as well on both
    # Forced to the scene's own levels and clipped: almost everything is lost, and said so.
    capsys.readouterr()
    assert main(["compress", str(unc["tif"]), "-o", str(tmp_path / "c.aec"), "--device", "cpu",
                 "--quiet", "--offset-db", "0", "--clip"]) == 0  # fmt: skip
    err_text = capsys.readouterr().err
    assert "autoenc: warning:" in err_text and "were clipped" in err_text and "%" in err_text
    # ... and the default run says nothing of the kind.
    assert main(["compress", str(unc["tif"]), "-o", str(tmp_path / "d.aec"), "--device", "cpu",
                 "--quiet"]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err
    print(f"offset {off:+.2f} dB; {outside.sum()} px outside, max err {err[outside].max():.4f} dB;"
          f" mean in-window err {e_unc:.3f} vs calibrated {e_cal:.3f} dB")  # fmt: skip


def test_given_offset_is_recorded_and_undone(tmp_path: Path) -> None:
    s0 = sigma0_scene(1)
    a = _round_trip(tmp_path, s0, "given", "--offset-db", "3.5")
    assert a["header"]["input"]["offset_db"] == 3.5
    valid = np.isfinite(s0) & (s0 > 0)
    d = _db(np.where(valid, s0, 1.0))
    outside = valid & ((d + 3.5 < WINDOW[0]) | (d + 3.5 > WINDOW[1]))
    assert np.abs(_db(a["y"]) - d)[outside].max() <= STEP / 2 + 1e-4
    assert np.abs(_db(a["y"]) - d)[valid & ~outside].mean() < 2.0  # lossy, but in its units


def test_bad_offset_is_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tif = ac.write_scene(tmp_path / "s.tif", sigma0_scene())
    for bad in ("none", "nan", "1000"):
        args = ["compress", str(tif), "-o", str(tmp_path / "x.aec"), "--offset-db", bad]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("autoenc: error:") and "--offset-db" in err
    assert not (tmp_path / "x.aec").exists()


def test_calibration_applies_to_the_amplitude_files_of_a_mixed_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 13 item 2: `compress dn.tif sigma0.tif --calibration 500` used to fail on the
    # float file ("--calibration applies to amplitude DN, but this is intensity").
    s0 = sigma0_scene(2)
    s0 = np.where(np.isfinite(s0), s0, 10**-1.9).astype(np.float32)  # DN has no NaN
    dn = np.clip(np.rint(np.sqrt(s0.astype(np.float64)) * 500.0), 1, 65535).astype(np.uint16)
    files = [ac.write_scene(tmp_path / "dn.tif", dn), ac.write_scene(tmp_path / "s0.tif", s0)]
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    args = ["compress", *map(str, files), "-o", str(out), "--device", "cpu", "--calibration", "500"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "s0.tif: --calibration 500 not applied (intensity input" in err
    assert "dn.tif: --calibration" not in err
    headers = {}
    for f in files:
        with ContainerReader(out / f"{f.stem}.aec") as r:
            headers[f.stem] = r.header["input"]
    assert headers["dn"]["calibration"]["constant"] == 500.0 and headers["dn"]["units"] == "sigma0"
    assert headers["s0"]["calibration"]["constant"] is None
    # both σ⁰ (the DN file rounded to integers): the same offset, up to a histogram bin
    assert headers["dn"]["offset_db"] == pytest.approx(headers["s0"]["offset_db"], abs=0.03)
