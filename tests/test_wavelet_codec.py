# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The wavelet codec through the scene codec, the variable-rate options, the shipped model.

A tiny WaveletCodec (3 levels, a 4-step ladder) is trained here for a few steps on the codec
fixture dataset; the shipped default model is tested as it lies in the package.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import Trainer
from make_codec_fixtures import make_codec_fixtures
from make_data import make_codec_dataset
from train_tiny import fit_tiny

from autoenc.cli import main
from autoenc.codec.container import ContainerReader
from autoenc.codec.model_io import export_safetensors, load_codec, weights_sha256
from autoenc.data.datamodule import PatchDataModule
from autoenc.models import create_model
from autoenc.pretrained import default_path, find_shipped, resolve
from autoenc.pretrained.card import compare_cards
from autoenc.task import CompressionTask

STEPS = [0.6, 0.25, 0.1, 0.04]
TILE = 64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread


@pytest.fixture(scope="module")
def tifs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_codec_fixtures(tmp_path_factory.mktemp("wavelet_tifs"))


@pytest.fixture(scope="module")
def codec_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_codec_dataset(tmp_path_factory.mktemp("wavelet_data") / "codec")


@pytest.fixture(scope="module")
def wavelet_ckpt(codec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-level WaveletCodec, 40 steps of maximum-likelihood training on the fixture data."""
    torch.manual_seed(0)
    model = create_model("WaveletCodec", levels=3, width=8, steps=STEPS)
    return fit_tiny(model, codec_root, tmp_path_factory.mktemp("wavelet") / "wavelet.ckpt", 40)


def _unit(a: np.ndarray) -> np.ndarray:
    return np.clip((10 * np.log10(np.maximum(a.astype(np.float64), 1e-30)) + 25.0) / 30.0, 0, 1)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((a - b) ** 2)))


def _compress(src: Path, out: Path, *extra: str) -> int:
    return main(["compress", str(src), "-o", str(out), *extra, "--quiet", "--tile", str(TILE)])


def test_every_quality_round_trips_a_scene_and_rate_rises(
    tifs: dict[str, Path], wavelet_ckpt: Path, tmp_path: Path
) -> None:
    src = tifs["sigma0"]
    with rasterio.open(src) as f:
        a = f.read(1)
    ok = np.isfinite(a) & (a > 0) & (a != -9999.0)
    sizes, quality = [], []
    for q in range(len(STEPS)):
        aec, tif = tmp_path / f"q{q}.aec", tmp_path / f"q{q}.tif"
        assert _compress(src, aec, "--ckpt", str(wavelet_ckpt), "--quality", str(q)) == 0
        with ContainerReader(aec) as r:
            assert r.header["model"]["quality"] == q
            assert r.header["model"]["step"] == STEPS[q]
        assert main(["decompress", str(aec), "-o", str(tif), "--ckpt", str(wavelet_ckpt),
                     "--quiet"]) == 0  # fmt: skip
        with rasterio.open(tif) as f:
            b = f.read(1)
        sizes.append(aec.stat().st_size)
        quality.append(_psnr(_unit(a[ok]), _unit(b[ok])))
    print(f"\n[wavelet qualities] bytes {sizes}, PSNR {[round(v, 2) for v in quality]}")
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert quality == sorted(quality)
    assert quality[-1] > 33.0  # measured 39.25 dB at step 0.04 (23.52 dB at 0.6)


def test_tiles_code_like_the_whole_image(
    tifs: dict[str, Path], wavelet_ckpt: Path, tmp_path: Path
) -> None:
    """With the probed halos, tiling changes the decoded scene by far less than coding does."""
    src = tifs["large"]
    outs = []
    for tile in (TILE, 512):
        aec, tif = tmp_path / f"t{tile}.aec", tmp_path / f"t{tile}.tif"
        assert main(["compress", str(src), "-o", str(aec), "--ckpt", str(wavelet_ckpt),
                     "--quality", "2", "--tile", str(tile), "--quiet"]) == 0  # fmt: skip
        assert main(["decompress", str(aec), "-o", str(tif), "--ckpt", str(wavelet_ckpt),
                     "--quiet"]) == 0  # fmt: skip
        with rasterio.open(tif) as f:
            outs.append(f.read(1))
    with rasterio.open(src) as f:
        a = f.read(1)
    ok = np.isfinite(a) & (a > 0)
    ua, u64, u512 = (_unit(v[ok]) for v in (a, *outs))
    coding = np.mean((ua - u512) ** 2)
    tiling = np.mean((u64 - u512) ** 2)
    print(f"\n[wavelet tiling] coding MSE {coding:.2e}, tiled-vs-whole MSE {tiling:.2e}")
    assert tiling < 0.05 * coding


def test_quality_errors(tifs: dict[str, Path], wavelet_ckpt: Path, tmp_path: Path) -> None:
    src, aec = tifs["sigma0"], tmp_path / "x.aec"
    assert _compress(src, aec, "--ckpt", str(wavelet_ckpt), "--quality", "4") == 2
    assert not aec.exists()
    # a decoder whose ladder gives another step for the file's quality is refused
    assert _compress(src, aec, "--ckpt", str(wavelet_ckpt), "--quality", "1") == 0
    ckpt = torch.load(wavelet_ckpt, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["model"]["init_args"]["steps"] = [0.6, 0.3, 0.1, 0.04]
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    out = tmp_path / "x.tif"
    assert main(["decompress", str(aec), "-o", str(out), "--ckpt", str(other), "--quiet"]) == 3
    assert not out.exists()


def test_fixed_rate_model_refuses_a_quality(
    tifs: dict[str, Path], codec_root: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    task = CompressionTask(model=create_model("PlainAutoencoder", latent_channels=4,
                                              base_channels=4), lmbda=None)  # fmt: skip
    trainer = Trainer(accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(task, datamodule=PatchDataModule(root=str(codec_root), batch_size=4,
                                                 num_workers=0))  # fmt: skip
    ckpt = tmp_path / "plain.ckpt"
    trainer.save_checkpoint(ckpt)
    aec = tmp_path / "p.aec"
    assert _compress(tifs["small"], aec, "--ckpt", str(ckpt), "--quality", "0") == 2


def test_safetensors_export_round_trip(wavelet_ckpt: Path, tmp_path: Path) -> None:
    codec = load_codec(wavelet_ckpt)
    path = export_safetensors(codec, tmp_path / "w.safetensors")
    back = load_codec(path)
    assert back.weights_sha256 == codec.weights_sha256
    assert back.spec == codec.spec and back.preprocessing == codec.preprocessing
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = codec.model(x, quality=1), back.model(x, quality=1)
    assert torch.equal(a["x_hat"], b["x_hat"])
    assert not list(tmp_path.glob(".*.tmp"))


# ---- the shipped default codec -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = default_path()
    assert path.is_file(), f"the shipped codec {path} is missing; run `make codec-model`"
    return path


def test_shipped_model_loads_without_pickle_or_network(
    shipped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the shipped model must load without pickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    import socket

    monkeypatch.setattr(socket, "socket", refuse)
    codec = load_codec(shipped)
    assert shipped.stat().st_size <= 8 * 1024 * 1024
    assert codec.spec["class_path"] == "autoenc.models.wavelet.WaveletCodec"
    assert codec.weights_sha256 == weights_sha256(codec.model.state_dict())
    assert find_shipped(codec.weights_sha256) == shipped
    assert find_shipped("0" * 64) is None


@pytest.mark.parametrize("name", ["wavelet-grdh", "wavelet-grdh-int", "wavelet-grdh-fast"])
def test_previous_defaults_stay_shipped_and_their_files_decode_without_ckpt(
    shipped: Path, tifs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    # issue 14 replaced wavelet-grdh (float contexts) by wavelet-grdh-int (integer contexts),
    # then that by wavelet-grdh-fast (its two finest levels in one stage), then that by
    # wavelet-grdh-parent (the finest predicted at its parent's resolution): files written by
    # the older ones are found by their header's weights hash and decode alike
    previous = shipped.with_name(f"{name}.safetensors")
    default = load_codec(shipped)
    assert previous != shipped and default.model.context.integer
    old = load_codec(previous)
    assert old.model.context.at_parent == 0 != default.model.context.at_parent
    assert find_shipped(old.weights_sha256) == previous != shipped
    aec = tmp_path / "a" / "s.aec"
    aec.parent.mkdir()
    # --ckpt takes a shipped model's name (resolve), in compress and in decompress
    assert resolve(Path(name)) == previous
    assert resolve(Path("no-such-model")) == Path("no-such-model")
    assert main(["compress", str(tifs["sigma0"]), "-o", str(aec), "--quiet",
                 "--ckpt", name]) == 0  # fmt: skip
    moved = tmp_path / "b" / "s.aec"
    moved.parent.mkdir()
    shutil.move(aec, moved)
    outs = {}
    for how, extra in (("found", []), ("named", ["--ckpt", name])):
        out = tmp_path / f"{how}.tif"
        assert main(["decompress", str(moved), "-o", str(out), "--quiet", *extra]) == 0
        with rasterio.open(out) as g:
            outs[how] = g.read(1)
    np.testing.assert_array_equal(outs["found"], outs["named"])


def test_shipped_card_names_its_command_and_matches_the_weights(shipped: Path) -> None:
    card = json.loads(shipped.with_suffix(".json").read_text())
    text = shipped.with_suffix(".md").read_text()
    assert card["command"] == "make codec-parent"  # derived from wavelet-grdh-int's training
    assert card["card_command"].startswith("autoenc export ")
    assert card["card_command"] in text and card["command"] in text
    assert card["record"]["weights_sha256"] == load_codec(shipped).weights_sha256
    rates = [q["bpp"] for q in card["qualities"]]
    assert rates == sorted(rates)
    assert compare_cards(card, card) == pytest.approx(0.0, abs=1e-9)


def test_default_model_compresses_and_decompresses_without_ckpt(
    shipped: Path, tifs: dict[str, Path], tmp_path: Path
) -> None:
    src = tifs["sigma0"]
    aec = tmp_path / "a" / "s.aec"
    aec.parent.mkdir()
    assert main(["compress", str(src), "-o", str(aec), "--quiet", "--quality", "0"]) == 0
    moved = tmp_path / "b" / "s.aec"  # nothing next to it: found by the header's weights hash
    moved.parent.mkdir()
    shutil.move(aec, moved)
    out = tmp_path / "s.tif"
    assert main(["decompress", str(moved), "-o", str(out), "--quiet"]) == 0
    with rasterio.open(src) as f, rasterio.open(out) as g:
        a, b = f.read(1), g.read(1)
    ok = np.isfinite(a) & (a > 0) & (a != -9999.0)
    assert _psnr(_unit(a[ok]), _unit(b[ok])) > 18.0


def test_codec_recipe_trains_and_logs_the_ladder(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configs/codec.yaml + the CPU overlay, shrunk: trains, logs every quality, resumes."""
    from autoenc.trainer_cli import run_trainer

    configs = Path(__file__).resolve().parents[1] / "configs"
    monkeypatch.chdir(tmp_path)
    args = [
        "--config", str(configs / "codec.yaml"), "--config", str(configs / "codec_cpu.yaml"),
        f"--data.root={tiny_root}", "--data.crop_size=null", "--data.num_workers=0",
        "--data.batch_size=4", "--trainer.max_steps=4", "--trainer.val_check_interval=2",
        "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
        "--model.model.init_args.levels=3", "--model.model.init_args.width=4",
        "--model.model.init_args.widths=[4,4,2]",
    ]  # fmt: skip
    cli = run_trainer(["fit", *args])
    metrics = cli.trainer.callback_metrics
    n = cli.model.model.qualities
    bpp = [float(metrics[f"val_ladder/bpp_q{q}"]) for q in range(n)]
    psnr = [float(metrics[f"val_ladder/psnr_q{q}"]) for q in range(n)]
    assert bpp == sorted(bpp) and psnr == sorted(psnr)
    last = tmp_path / "lightning_logs" / "codec" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    again = run_trainer(["fit", *args, "--trainer.max_steps=6", f"--ckpt_path={last}"])
    assert again.trainer.global_step == 6
    tested = run_trainer(["test", *args, f"--ckpt_path={last}"]).trainer.callback_metrics
    assert torch.isfinite(tested["test/psnr"]) and float(tested["test/bpp_real"]) > 0


# ---- decode-time despeckling ---------------------------------------------------------------


def test_simulated_speckle_matches_theory() -> None:
    """The dB bias of L-look speckle is 10/ln 10 (psi(L) - ln L); its variance psi'(L) (dB²)."""
    from autoenc.codec.despeckle import subband_speckle

    def psi(v: float) -> float:
        return float(torch.special.digamma(torch.tensor(v, dtype=torch.float64)))

    def polygamma(n: int, v: float) -> float:
        return float(torch.special.polygamma(n, torch.tensor(v, dtype=torch.float64)))

    for name, looks in (("white", 4.4), ("slc-intensity", 1.0)):
        sp = subband_speckle(3, (-25.0, 5.0), name)
        k = 10 / np.log(10) / 30.0  # nepers -> window units
        assert sp.bias == pytest.approx(k * (psi(looks) - np.log(looks)), rel=0.02)
        # near-orthonormal transform: the band variances, weighted by band size, sum to the
        # pixel variance
        sizes = [4**-3] + [4 ** -(3 - k_) for k_ in range(3) for _ in range(3)]
        total = sum(v * s for v, s in zip(sp.var, sizes, strict=True))
        assert total == pytest.approx(k**2 * float(polygamma(1, looks)), rel=0.05)


def test_despeckled_decode_is_smoother_and_optional(
    tifs: dict[str, Path], wavelet_ckpt: Path, tmp_path: Path
) -> None:
    src = tifs["sigma0"]
    aec = tmp_path / "s.aec"
    # --clip: despeckling acts on the network's reconstruction; exceptions come back as coded.
    assert _compress(src, aec, "--ckpt", str(wavelet_ckpt), "--quality", "2", "--clip") == 0
    out = {}
    for s in ("0", "1"):
        tif = tmp_path / f"d{s}.tif"
        assert main(["decompress", str(aec), "-o", str(tif), "--ckpt", str(wavelet_ckpt),
                     "--despeckle", s, "--quiet"]) == 0  # fmt: skip
        with rasterio.open(tif) as f:
            out[s] = f.read(1)
    plain = tmp_path / "plain.tif"
    assert main(["decompress", str(aec), "-o", str(plain), "--ckpt", str(wavelet_ckpt),
                 "--quiet"]) == 0  # fmt: skip
    with rasterio.open(plain) as f:
        assert np.array_equal(f.read(1), out["0"], equal_nan=True)  # strength 0 = the default
    with rasterio.open(src) as f:
        a = f.read(1)
    ok = np.isfinite(a) & (a > 0) & (a != -9999.0)
    u0, u1 = _unit(out["0"][ok]), _unit(out["1"][ok])
    # smoother (less speckle kept) and brighter by the speckle's dB bias (~0.5 dB at ENL 4.4)
    pair = ok[:, 1:] & ok[:, :-1]  # horizontal neighbours, both valid
    d0, d1 = (np.diff(_unit(out[k]), axis=1)[pair] for k in ("0", "1"))
    print(
        f"\n[despeckle] neighbour-difference std {d0.std():.4f} -> {d1.std():.4f}, "
        f"mean shift {np.mean(u1 - u0):+.4f}"
    )
    assert d1.std() < 0.9 * d0.std()
    assert 0.005 < float(np.mean(u1 - u0)) < 0.03
    assert main(["decompress", str(aec), "-o", str(tmp_path / "x.tif"), "--ckpt",
                 str(wavelet_ckpt), "--despeckle", "1.5", "--quiet"]) == 2  # fmt: skip
    assert main(["decompress", str(aec), "-o", str(tmp_path / "x.tif"), "--ckpt",
                 str(wavelet_ckpt), "--speckle-product", "nope", "--quiet"]) == 2  # fmt: skip


def test_export_writes_weights_card_and_readme_block(
    wavelet_ckpt: Path, codec_root: Path, tmp_path: Path
) -> None:
    """`autoenc export` measures what it ships: the card's numbers come from its own evaluation."""
    from autoenc.pretrained.card import README_BEGIN, README_END, readme_block

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold\n{README_END}\nend\n")
    out = tmp_path / "out"
    argv = ["export", str(wavelet_ckpt), "--name", "tiny", "--out-dir", str(out), "--data",
            str(codec_root), "--split", "test", "--limit", "4", "--report", str(tmp_path / "rep"),
            "--readme", str(readme), "--model-arg", "despeckle=[0.5, 0.5, 0, 0]"]  # fmt: skip
    assert main(argv) == 0
    card = json.loads((out / "tiny.json").read_text())
    assert card["card_command"] == "autoenc " + " ".join(argv)
    assert card["record"]["weights_sha256"] == load_codec(out / "tiny.safetensors").weights_sha256
    assert [q["quality"] for q in card["qualities"]] == list(range(len(STEPS)))
    results = json.loads((tmp_path / "rep" / "results.json").read_text())
    assert results["meta"]["n"] == card["n"] == 4
    assert readme.read_text() == f"intro\n{readme_block(card)}\nend\n"
    # the default decode despeckles where the export's per-quality defaults say so (0.5 at
    # qualities 0 and 1); the card's second curve is the faithful decode
    assert card["despeckle"]["strength"] == 0.0
    default, faithful = card["qualities"], card["despeckle"]["qualities"]
    assert load_codec(out / "tiny.safetensors").model.despeckle == (0.5, 0.5, 0.0, 0.0)
    for q in (0, 1):
        assert default[q]["psnr"] < faithful[q]["psnr"]  # smoothed: further from the speckle
    for q in (2, 3):
        assert default[q]["psnr"] == faithful[q]["psnr"]
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert main(argv) == 2  # the export exists: refused without --overwrite
    # not a decode-time argument
    assert main([*argv[:-2], "--model-arg", "levels=3", "--overwrite"]) == 2
    assert main([*argv[:2], "--out-dir", str(out), "--data", str(tmp_path / "none"),
                 "--overwrite"]) == 2  # fmt: skip
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before  # nothing half-replaced
