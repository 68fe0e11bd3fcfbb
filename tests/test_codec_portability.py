# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Files decode on another execution path (issue 14, item 2), with the shipped model.

The entropy parameters (the context model's Gaussian scales, hence the table indexes) must be
computed identically by encoder and decoder; the per-tile checksum guards it. Here a scene is
encoded on one path and decoded on another, and must give the very pixels of a decode on the
encoder's own path:

* CPU intra-op threads 1 vs 2 (either way round);
* the transforms under bf16 autocast at encode, plain float32 at decode: the context model
  always runs in float32, so only the coefficients (not the coding) feel the autocast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from autoenc.codec.scene import compress_scene, decompress_scene
from autoenc.pretrained import load_default

sys.path.insert(0, str(Path(__file__).parent / "faults"))
import aec_craft as ac  # noqa: E402 - tests/faults is not on the path of this folder


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _scene(tmp: Path) -> Path:
    """160 x 224 σ⁰ (two tiles of 128 a row): blocky land, speckle, a few targets."""
    rng = np.random.default_rng(21)
    refl = np.repeat(np.repeat(rng.uniform(-22.0, 0.0, (10, 14)), 16, 0), 16, 1)
    s0 = 10 ** (refl / 10) * rng.gamma(4.4, 1 / 4.4, refl.shape)
    s0[40:42, 100:102] = 100.0
    return ac.write_scene(tmp / "s.tif", s0.astype(np.float32))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as f:
        return f.read(1)


Path_ = Callable[[], AbstractContextManager[object]]
PATHS: dict[str, Path_] = {
    "1 thread": lambda: threads(1),
    "2 threads": lambda: threads(2),
    "bf16 autocast": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    "float32": nullcontext,
}


def _load(codec: object) -> Callable[[object], object]:
    return lambda _: codec


@pytest.mark.parametrize(("enc", "dec"), [("1 thread", "2 threads"), ("2 threads", "1 thread")])
def test_a_file_decodes_with_other_thread_counts_to_the_same_pixels(
    tmp_path: Path, enc: str, dec: str
) -> None:
    codec = load_default("cpu")
    tif, aec = _scene(tmp_path), tmp_path / "s.aec"
    with PATHS[enc]():
        compress_scene(tif, aec, codec, tile=128, offset_db=0.0)
    outs = {}
    for name in (enc, dec):
        out = tmp_path / f"{name}.tif"
        with PATHS[name]():
            decompress_scene(aec, out, _load(codec))  # type: ignore[arg-type]
        outs[name] = _read(out)
    np.testing.assert_array_equal(outs[dec], outs[enc])
    assert np.isfinite(outs[dec]).all()


def _encode_each_way_decode_in_float32(
    codec: object, tif: Path, tmp: Path
) -> dict[str, np.ndarray]:
    """Encode under bf16 autocast and in float32; both decoded in float32."""
    outs = {}
    for name in ("bf16 autocast", "float32"):
        aec, out = tmp / f"{name}.aec", tmp / f"{name}.tif"
        with PATHS[name]():
            compress_scene(tif, aec, codec, tile=128, offset_db=0.0)  # type: ignore[arg-type]
        decompress_scene(aec, out, _load(codec))  # type: ignore[arg-type]
        outs[name] = _read(out)
    return outs


def test_a_file_encoded_under_bf16_autocast_decodes_in_float32(tmp_path: Path) -> None:
    # The transforms feel the autocast (other coefficients, so other symbols), the coding does
    # not: the float32 decoder computes the encoder's scales, and the image is as good.
    codec = load_default("cpu")
    tif = _scene(tmp_path)
    x = _read(tif).astype(np.float64)
    psnr = {}
    for name, y in _encode_each_way_decode_in_float32(codec, tif, tmp_path).items():
        d = np.clip(10 * np.log10(y.astype(np.float64)), -25.0, 5.0)
        err = d - np.clip(10 * np.log10(x), -25.0, 5.0)
        psnr[name] = float(10 * np.log10(30.0**2 / np.mean(err**2)))
    assert abs(psnr["bf16 autocast"] - psnr["float32"]) < 0.3, psnr


def test_hyperprior_file_encoded_under_bf16_autocast_decodes_in_float32(tmp_path: Path) -> None:
    # h_s predicts the scales: under the caller's bf16 autocast it used to compute other ones
    # than the float32 decoder (a corrupt tile); now both run it in float32.
    from autoenc.codec.model_io import load_codec

    codec = load_codec(ac.tiny_codec_checkpoint(tmp_path / "hyper.ckpt"))
    tif = _scene(tmp_path)
    outs = _encode_each_way_decode_in_float32(codec, tif, tmp_path)
    assert np.isfinite(outs["bf16 autocast"]).all()
    # an untrained model: the bf16 coefficients move some pixels, most stay where they were
    assert np.median(np.abs(10 * np.log10(outs["bf16 autocast"] / outs["float32"]))) < 0.5
