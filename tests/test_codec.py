# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``autoenc compress`` / ``autoenc decompress`` end to end, with tiny models trained here.

Scenes come from ``tests/data/make_codec_fixtures.py`` (written with rasterio directly). The
measured numbers behind every bound are printed (run with ``-s``) and quoted in the comments.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import Trainer
from make_codec_fixtures import CAL_A, SHAPES, make_codec_fixtures
from make_data import make_codec_dataset
from oracles import invalid_oracle

from autoenc.cli import main
from autoenc.codec.container import ContainerReader
from autoenc.codec.model_io import LoadedCodec, load_codec
from autoenc.codec.scene import FILL_UNIT, compress_scene
from autoenc.data.datamodule import PatchDataModule
from autoenc.data.dataset_format import read_manifest
from autoenc.entropy import bits
from autoenc.models import create_model, list_models, model_spec
from autoenc.sar.preprocessing import Preprocessing
from autoenc.task import CompressionTask
from autoenc.tiling import receptive_halo

TILE = 64


# ---- fixtures ------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread


@pytest.fixture(scope="module")
def tifs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_codec_fixtures(tmp_path_factory.mktemp("codec_tifs"))


def _fit(
    name: str, kw: dict[str, Any], root: Path, out: Path, lmbda: float | None, steps: int
) -> Path:
    """Train a seeded tiny ``name`` for ``steps`` on the tiny dataset; checkpoint at ``out``.

    Init, shuffling and augmentation all draw from torch's generator; no ``deterministic=True``
    (Lightning would switch deterministic algorithms on for the rest of the session).
    """
    torch.manual_seed(0)
    task = CompressionTask(
        model=create_model(name, **kw),
        lmbda=lmbda,
        lr=5e-3,
        scheduler="none",
        w_mse=1.0,
        w_ssim=0.0,
    )
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out.parent,
    )
    trainer.fit(task, datamodule=PatchDataModule(root=str(root), batch_size=4, num_workers=0))
    trainer.save_checkpoint(out)
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["autoenc_preprocessing"]["normalisation"] == {
        "vmin_db": -25.0, "vmax_db": 5.0, "noise_floor_db": -30.0
    }  # fmt: skip
    return out


HYPER = {"latent_channels": 16, "base_channels": 8, "blocks_per_stage": 1, "hyper_channels": 8}


@pytest.fixture(scope="module")
def codec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training data of the codec models: 64-px patches (see make_data.CODEC_TINY)."""
    return make_codec_dataset(tmp_path_factory.mktemp("codec_data") / "codec")


@pytest.fixture(scope="module")
def hyper_ckpt(codec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HyperpriorAutoencoder trained for rate-distortion (lambda = 100, 100 steps)."""
    out = tmp_path_factory.mktemp("hyper") / "hyper.ckpt"
    return _fit("HyperpriorAutoencoder", HYPER, codec_root, out, 100.0, 100)


@pytest.fixture(scope="module")
def plain_ckpt(codec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classic PlainAutoencoder trained without a rate term (lmbda=None, 20 steps)."""
    out = tmp_path_factory.mktemp("plain") / "plain.ckpt"
    kw = {"latent_channels": 8, "base_channels": 4}
    return _fit("PlainAutoencoder", kw, codec_root, out, None, 20)


@pytest.fixture(scope="module")
def hyper(hyper_ckpt: Path) -> LoadedCodec:
    return load_codec(hyper_ckpt)


@pytest.fixture(scope="module")
def halos(hyper: LoadedCodec) -> tuple[int, int]:
    """Input and latent halo of the hyperprior, probed once (saves a probe per compress)."""
    m = hyper.model
    return receptive_halo(m.g_a, m.g_s, m.latent_channels, m.downsampling_factor)


def tiling_args(halos: tuple[int, int]) -> list[str]:
    return ["--tile", str(TILE), "--halo", str(halos[0]), "--latent-halo", str(halos[1])]


@pytest.fixture(scope="module")
def valid_aec(
    tifs: dict[str, Path],
    hyper_ckpt: Path,
    halos: tuple[int, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A valid .aec of the sigma0 scene (3 x 4 tiles of 64 px)."""
    out = tmp_path_factory.mktemp("aec") / "sigma0.aec"
    assert compress(tifs["sigma0"], out, hyper_ckpt, *tiling_args(halos)) == 0
    return out


# ---- helpers -------------------------------------------------------------------------------


def _read(path: Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as f:
        return f.read(1), f.profile | {
            "gcps": f.gcps,
            "descriptions": f.descriptions,
            "nodatavals": f.nodatavals,
        }


def to_unit(a: np.ndarray, kind: str, window: tuple[float, float] = (-25.0, 5.0)) -> np.ndarray:
    """Values -> the model's [0, 1] dB window (float64): sigma0 or DN calibrated with CAL_A."""
    x = np.maximum(a.astype(np.float64), 1e-30)
    db = 10 * np.log10(x) if kind == "sigma0" else 20 * np.log10(x) - 20 * np.log10(CAL_A)
    lo, hi = window
    return np.clip((db - lo) / (hi - lo), 0.0, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a - b) ** 2)))


def bit_equal(a: np.ndarray, b: np.ndarray) -> bool:
    assert a.dtype == b.dtype
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(np.array_equal(a.view(view), b.view(view)))


def compress(src: Path, out: Path, ckpt: Path, *extra: str) -> int:
    return main(["compress", str(src), "-o", str(out), "--ckpt", str(ckpt), *extra, "--quiet"])


def decompress(aec: Path, out: Path, ckpt: Path) -> int:
    return main(["decompress", str(aec), "-o", str(out), "--ckpt", str(ckpt), "--quiet"])


# ---- 1. round trip -------------------------------------------------------------------------

# Measured (torch CPU, seed 0, 1 thread; models trained on 64-px patches of IW GRDH speckle):
# sigma0 18.61 dB, grd_dn 18.33 dB over valid pixels; a flat image at FILL_UNIT scores 10.15 /
# 10.06 dB. The bound leaves over 2 dB of margin.
ROUND_TRIP = {
    # name: (kind, extra compress options, PSNR bound in dB)
    "sigma0": ("sigma0", {}, 16.0),
    "grd_dn": ("amplitude", {"calibration": str(CAL_A)}, 16.0),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_round_trip_keeps_metadata_and_invalid_pixels(
    name: str, tifs: dict[str, Path], hyper: LoadedCodec, hyper_ckpt: Path, tmp_path: Path
) -> None:
    kind, opts, bound = ROUND_TRIP[name]
    src = tifs[name]
    h, w = SHAPES[name]
    assert h % TILE and w % TILE  # not a tile multiple
    aec, out = tmp_path / f"{name}.aec", tmp_path / f"{name}.tif"
    stats = compress_scene(src, aec, hyper, tile=TILE, **opts)
    assert stats.file_bytes == aec.stat().st_size
    assert stats.bpp == aec.stat().st_size * 8 / (h * w)
    assert decompress(aec, out, hyper_ckpt) == 0

    a, pa = _read(src)
    b, pb = _read(out)
    assert b.shape == a.shape == (h, w)
    assert b.dtype == a.dtype
    assert pb["crs"] == pa["crs"]
    assert pb["transform"] == pa["transform"]
    assert pb["descriptions"] == pa["descriptions"] == ("VV",)
    assert pb["nodatavals"] == pa["nodatavals"]
    gcps_a, gcps_b = pa["gcps"], pb["gcps"]
    assert [(g.row, g.col, g.x, g.y) for g in gcps_b[0]] == [
        (g.row, g.col, g.x, g.y) for g in gcps_a[0]
    ]
    assert gcps_b[1] == gcps_a[1]
    if name == "sigma0":
        assert pa["crs"] is not None and not gcps_a[0]
    else:
        assert pa["crs"] is None and len(gcps_a[0]) == 4

    bad = invalid_oracle(a, pa["nodata"])
    assert stats.invalid == int(bad.sum()) > 0
    assert bit_equal(a[bad], b[bad])  # nodata, NaN (same positions) and zero border, exactly
    np.testing.assert_array_equal(np.isnan(b), np.isnan(a))
    assert np.all(np.isfinite(b[~bad])) and np.all(b[~bad] > 0)

    ua, ub = to_unit(a[~bad], kind), to_unit(b[~bad], kind)
    got = psnr(ua, ub)
    flat = psnr(ua, np.full_like(ua, FILL_UNIT))
    print(f"\n[round trip {name}] PSNR {got:.2f} dB (flat {flat:.2f} dB), {stats.bpp:.3f} bpp")
    assert got > bound
    assert got > flat + 4.0  # clearly better than a flat image at FILL_UNIT


# ---- 2. determinism ------------------------------------------------------------------------


def test_compress_twice_gives_identical_bytes(
    tifs: dict[str, Path],
    hyper: LoadedCodec,
    hyper_ckpt: Path,
    halos: tuple[int, int],
    tmp_path: Path,
) -> None:
    files = []
    for i in range(2):
        out = tmp_path / f"run{i}.aec"
        assert compress(tifs["sigma0"], out, hyper_ckpt, *tiling_args(halos)) == 0
        files.append(out.read_bytes())
    inproc = tmp_path / "inproc.aec"
    compress_scene(tifs["sigma0"], inproc, hyper, tile=TILE, halo=halos[0], latent_halo=halos[1])
    files.append(inproc.read_bytes())
    assert len(files[0]) > 1000
    assert files[0] == files[1] == files[2]


# ---- 3. decoder equals the in-process model ------------------------------------------------


def test_decoded_file_equals_in_process_reconstruction(
    tifs: dict[str, Path], hyper: LoadedCodec, hyper_ckpt: Path, tmp_path: Path
) -> None:
    src = tifs["small"]
    h, w = SHAPES["small"]
    assert h <= TILE and w <= TILE  # one tile
    aec, out = tmp_path / "small.aec", tmp_path / "small.tif"
    # The network's reconstruction alone: clipped, without the exception layer's pixels.
    compress_scene(src, aec, hyper, tile=TILE, exceptions="clip", offset_db=0.0)
    assert decompress(aec, out, hyper_ckpt) == 0
    a, _ = _read(src)
    decoded = to_unit(_read(out)[0], "sigma0")

    # The codec's preprocessing, redone here: the dB window (no invalid pixels, and 48 x 48 is
    # a multiple of 16, so nothing is filled or padded).
    f = hyper.model.downsampling_factor
    assert h % f == 0 and w % f == 0 and not invalid_oracle(a, None).any()
    x = torch.from_numpy(to_unit(a, "sigma0")).float()[None, None]
    model = hyper.model.eval()
    with torch.inference_mode():
        y = model.encode(x)
        coded = model.compress_latent(y)
        y_hat = model.decompress_latent(coded["strings"], coded["shape"])
        via_bytes = model.decode(y_hat)[0, 0, :h, :w].double().numpy()
        forward = model(x)["x_hat"][0, 0, :h, :w].double().numpy()
    d_bytes = np.abs(decoded - via_bytes).max()
    d_forward = np.abs(decoded - forward).max()
    print(f"\n[in-process] max |file - decode(bytes)| {d_bytes:.2e}, |file - fwd| {d_forward:.2e}")
    assert d_bytes < 1e-5
    assert d_forward < 1e-5
    assert np.ptp(decoded) > 0.05  # a real image, not a constant


# ---- 4. tiled vs whole-image ---------------------------------------------------------------


def _untrained_ckpt(name: str, root: Path, path: Path) -> Path:
    """A checkpoint of an untrained tiny variant, with tables, saved as the task saves one."""
    torch.manual_seed(0)
    kw: dict[str, Any] = {"latent_channels": 8, "base_channels": 4}
    if name in ("ResidualAutoencoder", "AttentionAutoencoder", "HyperpriorAutoencoder"):
        kw["blocks_per_stage"] = 1
    if name == "AttentionAutoencoder":
        kw["reduction"] = 4
    if name == "HyperpriorAutoencoder":
        kw["hyper_channels"] = 8
    task = CompressionTask(model=create_model(name, **kw))
    task.preprocessing = Preprocessing.from_manifest(read_manifest(root))
    ckpt: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": {"model": model_spec(task.model)},
    }
    task.on_save_checkpoint(ckpt)  # builds the coding tables and records the preprocessing
    torch.save(ckpt, path)
    return path


#: case -> (variant, halos (None: probed), trained hyperprior?, expectation).
#: Measured (CPU, 1 thread; max |tiled - whole| in the unit window, share of pixels > 1e-4,
#: PSNR(tiled) - PSNR(whole)):
#:   PlainAutoencoder      halo 48/3    0.0          0 %      0.0 dB
#:   ResNetAutoencoder     halo 112/6   2.9e-06      0 %      -3e-08 dB
#:   ResidualAutoencoder   halo 80/6    5.4e-06      0 %      +2e-07 dB
#:   AttentionAutoencoder  halo 256/16  1.4e-05      0 %      -3e-07 dB (windows = whole scene)
#:   Attention, halo 80/6               5.2e-04      1.4 %    -1e-05 dB (global pooling)
#:   Hyperprior untrained  halo 80/6    1.0          56 %     +0.015 dB (z, means per tile)
#:   Hyperprior trained    halo 80/6    0.17         94 %     +0.016 dB
#:   Residual, halo 32/2 (control)      0.89         57 %     -0.022 dB (seams: can fail)
TILED_CASES: dict[str, tuple[str, tuple[int, int] | None, bool, str]] = {
    **{
        name: (name, None, False, "hyper" if name == "HyperpriorAutoencoder" else "float")
        for name in list_models()
        if name != "WaveletCodec"  # tiled wavelet coding: tests/test_wavelet_codec.py
    },
    # The ResidualAutoencoder's reach (same widths): what CBAM gets without its 256-px cap.
    "AttentionAutoencoder-halo80": ("AttentionAutoencoder", (80, 6), False, "pooling"),
    "HyperpriorAutoencoder-trained": ("HyperpriorAutoencoder", None, True, "hyper"),
    "ResidualAutoencoder-halo32": ("ResidualAutoencoder", (32, 2), False, "seams"),
}
TILED: dict[str, dict[str, float]] = {}


@pytest.mark.parametrize("case", list(TILED_CASES))
def test_tiled_matches_whole_image(
    case: str, tifs: dict[str, Path], tiny_root: Path, hyper_ckpt: Path, tmp_path: Path
) -> None:
    name, halos, trained, expect = TILED_CASES[case]
    ckpt = hyper_ckpt if trained else _untrained_ckpt(name, tiny_root, tmp_path / f"{name}.ckpt")
    codec = load_codec(ckpt)
    m = codec.model
    if halos is None:
        halos = receptive_halo(m.g_a, m.g_s, m.latent_channels, m.downsampling_factor)
    src = tifs["large"]
    h, w = SHAPES["large"]
    outs = {}
    for tile in (TILE, 512):  # 512: a single tile, i.e. the whole image at once
        aec, out = tmp_path / f"t{tile}.aec", tmp_path / f"t{tile}.tif"
        compress_scene(src, aec, codec, tile=tile, halo=halos[0], latent_halo=halos[1])
        assert decompress(aec, out, ckpt) == 0
        outs[tile] = to_unit(_read(out)[0], "sigma0")
    ref = to_unit(_read(src)[0], "sigma0")
    diff = np.abs(outs[TILE] - outs[512])
    share = float((diff > 1e-4).mean())
    gap = psnr(ref, outs[TILE]) - psnr(ref, outs[512])
    TILED[case] = {"halo": halos[0], "latent_halo": halos[1], "max_diff": float(diff.max()),
                   "share_over_1e-4": share, "psnr_gap_db": gap}  # fmt: skip
    print(f"\n[tiled vs whole] {case}: {TILED[case]}")
    if expect == "float":  # float error; a few latent roundings may flip on other machines
        assert share <= 0.02 and abs(gap) < 0.01
    elif expect == "pooling":  # CBAM pools over the window, not the scene
        assert diff.max() < 1e-2 and abs(gap) < 0.01
    elif expect == "hyper":  # every tile has its own z: other means, other roundings
        assert abs(gap) < 0.1
    else:  # a halo below the receptive field: seams everywhere
        assert share > 0.3


# ---- 5. fuzz -------------------------------------------------------------------------------


def test_fuzzed_files_fail_cleanly(
    valid_aec: Path, hyper_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = valid_aec.read_bytes()
    rng = random.Random(1234)
    cases: list[bytes] = []
    for _ in range(1000):
        pos = rng.randrange(len(data))
        new = rng.choice([b for b in range(256) if b != data[pos]])
        cases.append(data[:pos] + bytes([new]) + data[pos + 1 :])
    for _ in range(100):
        cases.append(data[: rng.randrange(len(data))])
    assert all(c != data for c in cases)
    bad_dir, out_dir = tmp_path / "in", tmp_path / "out"
    bad_dir.mkdir()
    out_dir.mkdir()
    bad, out = bad_dir / "bad.aec", out_dir / "out.tif"
    header_end = 14 + int.from_bytes(data[10:14], "little")  # magic, version, length, JSON
    header_hits = 0
    capsys.readouterr()
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        bad.write_bytes(case)
        code = main(["decompress", str(bad), "-o", str(out), "--ckpt", str(hyper_ckpt), "--quiet"])
        err = capsys.readouterr().err
        assert code == 4, (i, code, err)
        assert err.startswith("autoenc: error: ") and err.count("\n") == 1, (i, err)
        assert "Traceback" not in err
        assert sorted(os.listdir(out_dir)) == [] and sorted(os.listdir(bad_dir)) == ["bad.aec"]
        if i < 1000 and len(case) == len(data):
            pos = next(j for j in range(len(data)) if case[j] != data[j])
            if 14 <= pos < header_end:  # the JSON may still parse: the CRC must catch it
                assert "header CRC mismatch" in err, (i, err)
                header_hits += 1
    seconds = time.perf_counter() - t0
    print(f"\n[fuzz] {len(cases)} damaged files ({header_hits} in the header) in {seconds:.1f} s")
    assert header_hits > 0
    assert seconds < 60


# ---- 6. model and input problems -----------------------------------------------------------


def _edited(src: Path, dst: Path, edit: Any) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def test_wrong_checkpoint_is_refused(
    valid_aec: Path, hyper_ckpt: Path, plain_ckpt: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    def perturb(ckpt: dict[str, Any]) -> None:
        key = next(k for k in ckpt["state_dict"] if k.startswith("model.g_s.") and "weight" in k)
        ckpt["state_dict"][key] = ckpt["state_dict"][key] + 1e-3

    retrained = _edited(hyper_ckpt, tmp_path / "retrained.ckpt", perturb)
    for other in (plain_ckpt, retrained):
        out = tmp_path / "out.tif"
        assert decompress(valid_aec, out, other) == 3
        err = capsys.readouterr().err
        assert err.startswith("autoenc: error: ") and str(other) in err
        assert "not the model" in err
        assert not out.exists()


def test_checkpoint_without_preprocessing(
    tifs: dict[str, Path], hyper_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _edited(hyper_ckpt, tmp_path / "nopre.ckpt", lambda c: c.pop("autoenc_preprocessing"))
    out = tmp_path / "x.aec"
    assert compress(tifs["small"], out, ckpt) == 3
    err = capsys.readouterr().err
    assert "preprocessing" in err and str(ckpt) in err
    assert not out.exists()


OLD_CHECKPOINTS = {
    # case: (model, state_dict prefixes removed, expected message)
    "plain": ("plain", ("model.entropy_bottleneck.",), "predates autoenc's entropy models"),
    "hyper": (
        "hyper",
        ("model.entropy_bottleneck.", "model.gaussian_conditional."),
        "predates autoenc's entropy models",
    ),
    "hyper-no-bottleneck": ("hyper", ("model.entropy_bottleneck.",), "weights do not fit"),
}


@pytest.mark.parametrize("case", list(OLD_CHECKPOINTS))
def test_checkpoint_before_entropy_models(
    case: str, tifs: dict[str, Path], hyper_ckpt: Path, plain_ckpt: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    which, prefixes, message = OLD_CHECKPOINTS[case]
    src = {"plain": plain_ckpt, "hyper": hyper_ckpt}[which]

    def strip(ckpt: dict[str, Any]) -> None:
        sd = ckpt["state_dict"]
        for k in [k for k in sd if k.startswith(prefixes)]:
            del sd[k]

    ckpt = _edited(src, tmp_path / "old.ckpt", strip)
    out = tmp_path / "x.aec"
    assert compress(tifs["small"], out, ckpt) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"autoenc: error: {ckpt}") and err.count("\n") == 1
    assert message in err
    assert not out.exists()


def test_unreadable_input_is_bad_input(
    hyper_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(bytes(range(256)) * 8)
    for src in (garbage, tmp_path / "missing.tif"):
        out = tmp_path / "x.aec"
        assert compress(src, out, hyper_ckpt) == 2
        err = capsys.readouterr().err
        assert err.startswith("autoenc: error: ") and src.name in err
        assert not out.exists()
    out = tmp_path / "x.tif"
    assert decompress(tmp_path / "missing.aec", out, hyper_ckpt) == 2
    assert "missing.aec" in capsys.readouterr().err


def test_uncalibrated_dn_compresses_through_the_per_scene_offset(
    tifs: dict[str, Path], hyper_ckpt: Path, tmp_path: Path
) -> None:
    # Issue 13 item 2: raw DN² (about +40 dB) used to be refused for a σ⁰ model; now the
    # offset moves it into the window, the header carries it and decode undoes it, so the
    # uncalibrated file decodes as well as the calibrated one (same pixels, same model).
    with rasterio.open(tifs["grd_dn"]) as f:
        dn = f.read(1).astype(np.float64)
    errs = {}
    for name, extra in (("raw", ()), ("calibrated", ("--calibration", str(CAL_A)))):
        aec, back = tmp_path / f"{name}.aec", tmp_path / f"{name}.tif"
        assert compress(tifs["grd_dn"], aec, hyper_ckpt, *extra) == 0
        with ContainerReader(aec) as r:
            offset = r.header["input"]["offset_db"]
        assert decompress(aec, back, hyper_ckpt) == 0
        with rasterio.open(back) as f:
            out = f.read(1).astype(np.float64)
        ok = dn > 0
        errs[name] = (offset, float(np.abs(20 * np.log10(out[ok] / dn[ok])).mean()))
    (raw_offset, raw_err), (cal_offset, cal_err) = errs["raw"], errs["calibrated"]
    # auto is shift-equivariant: raw DN² is σ⁰ + 20 log10(A) dB (up to a histogram bin)
    assert raw_offset == pytest.approx(cal_offset - 20 * np.log10(CAL_A), abs=0.03)
    assert abs(raw_err - cal_err) < 0.15, errs  # dB of mean error


# ---- 7. pickles --------------------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``path``: the kind of code a checkpoint must never run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def test_pickle_bearing_checkpoint_is_refused(
    tifs: dict[str, Path], valid_aec: Path, hyper_ckpt: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sentinel = tmp_path / "pwned"
    ckpt = torch.load(hyper_ckpt, map_location="cpu", weights_only=True)
    ckpt["extra"] = _Payload(sentinel)
    evil = tmp_path / "evil.ckpt"
    torch.save(ckpt, evil)
    out = tmp_path / "x.aec"
    assert compress(tifs["small"], out, evil) == 3
    assert "refusing checkpoint" in capsys.readouterr().err
    assert decompress(valid_aec, tmp_path / "x.tif", evil) == 3
    assert str(evil) in capsys.readouterr().err
    assert not sentinel.exists() and not out.exists()
    # The payload is live: an unrestricted unpickler does create the sentinel.
    torch.load(evil, map_location="cpu", weights_only=False)
    assert sentinel.exists()


# ---- 8. estimated vs real bits -------------------------------------------------------------


def test_estimated_bits_match_real_bytes(hyper: LoadedCodec, tiny_root: Path) -> None:
    dm = PatchDataModule(root=str(tiny_root), batch_size=4, num_workers=0)
    dm.setup()
    ds = dm.datasets["test"]
    x = torch.stack([ds[i]["image"] for i in range(len(ds))]).float() / 65535
    model = hyper.model.eval()
    with torch.inference_mode():
        likelihoods = model(x)["likelihoods"]
        strings = model.compress(x)["strings"]  # [y strings, z strings], one per patch
    rows = []
    for group, key in zip(strings, ("y", "z"), strict=True):
        for i, s in enumerate(group):
            rows.append((key, float(bits(likelihoods[key][i])), 8 * len(s)))
    est, real = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(
        f"\n[bits] {len(ds)} patches of 32 px: estimated {est:.1f}, real {real} bits, per string:"
    )
    print("  " + ", ".join(f"{k} {e:.1f}/{r}" for k, e, r in rows))
    for _, e, r in rows:
        assert -0.03 * e <= r - e <= 0.03 * e + 40


@pytest.mark.parametrize(
    "mutation",
    ["huge_grid", "bad_gcp", "bad_crs", "wrong_mask_position"],
)
def test_crafted_files_with_valid_crcs_fail_cleanly(
    mutation: str, valid_aec: Path, hyper_ckpt: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Files whose CRCs are right but whose content lies: refused fast with exit 4."""
    from autoenc.codec.container import ContainerReader, ContainerWriter, read_header

    header = read_header(valid_aec)
    if mutation == "huge_grid":  # would be billions of tiles if anything looped over the grid
        header["scene"]["height"] = header["scene"]["width"] = 1 << 20
        header["tiling"]["tile"] = 16
    elif mutation == "bad_gcp":
        header["geo"]["gcps"] = [{"row": 1.0, "bogus": 2}]
    elif mutation == "bad_crs":
        header["geo"]["crs_wkt"] = "NOT A WKT"
        header["geo"]["transform"] = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
    crafted = tmp_path / "crafted.aec"
    with ContainerWriter(crafted, header) as w, ContainerReader(valid_aec) as r:
        for kind, payload in r.chunks():
            if kind == b"MASK" and mutation == "wrong_mask_position":
                payload = (7).to_bytes(4, "little") + payload[4:]  # a row that does not exist
            w.add_chunk(kind, payload)
    out = tmp_path / "out.tif"
    t0 = time.perf_counter()
    code = main(["decompress", str(crafted), "-o", str(out), "--ckpt", str(hyper_ckpt), "--quiet"])
    err = capsys.readouterr().err
    assert code == 4, err
    assert err.startswith("autoenc: error: ") and "Traceback" not in err
    assert time.perf_counter() - t0 < 30 and not out.exists()
