# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The fast decoder (issue 14, item 1): the same bits and pixels by every route.

* the worker-process decoder gives the in-process decoder's pixels, and its errors: a job
  that fails, or a worker that dies, is decoded again in-process;
* one-stage levels: a model derived with ``--one-stage`` codes and decodes exactly, and its
  rate equals what its anchor nets predict for every symbol;
* the coder's scatter decoding and the lookup-table indexes equal their reference forms.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from make_codec_fixtures import make_codec_fixtures

import autoenc.codec.tile_rows as tile_rows
from autoenc.codec.container import CorruptStreamError
from autoenc.codec.model_io import LoadedCodec, load_codec, weights_sha256
from autoenc.codec.payload import pack_tile, unpack_tile
from autoenc.codec.scene import compress_scene, decompress_scene
from autoenc.entropy.coder import StreamDecoder, StreamEncoder, TableCoder, quantize_pmf
from autoenc.entropy.subband_coding import grid_indexes, thresholds
from autoenc.entropy.subband_context import stages
from autoenc.pretrained import DEFAULT, FOLDER
from autoenc.pretrained.derive import with_at_parent, with_one_stage

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not tile_rows.can_fork(), reason="decode workers are forked: Linux only"),
]
TILE = 64


@pytest.fixture(scope="module")
def codec() -> LoadedCodec:
    return load_codec(FOLDER / f"{DEFAULT}.safetensors")


@pytest.fixture(scope="module")
def coded(codec: LoadedCodec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``large.tif`` (330 x 300) in 64-px tiles: 6 x 5 tiles, edge tiles of other shapes."""
    tmp = tmp_path_factory.mktemp("fast_decode")
    aec = tmp / "large.aec"
    compress_scene(make_codec_fixtures(tmp)["large"], aec, codec, tile=TILE)
    return aec


def _decode(aec: Path, codec: LoadedCodec, out: Path, workers: int) -> np.ndarray:
    decompress_scene(aec, out, lambda h: codec, workers=workers)
    with rasterio.open(out) as f:
        return f.read(1)


def test_the_shipped_default_codes_two_levels_in_one_stage(codec: LoadedCodec) -> None:
    ctx = codec.model.context
    assert ctx.one_stage == 2 and len(ctx.rest) == ctx.levels - 2
    assert ctx.at_parent == 2
    for net in ctx.anchor[-2:]:  # at the parents' resolution: 8 inputs, 2 x 2 children x 3 bands
        assert (net.layers()[0].in_channels, net.layers()[-1].out_channels) == (8, 12)
    plan = stages(ctx.levels, ctx.one_stage)
    assert [anchors for _, anchors in plan[-2:]] == [None, None]
    assert all(anchors is not None for _, anchors in plan[:-2])


def test_workers_decode_the_pixels_of_the_in_process_decoder(
    coded: Path, codec: LoadedCodec, tmp_path: Path
) -> None:
    here = _decode(coded, codec, tmp_path / "here.tif", workers=0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pool = _decode(coded, codec, tmp_path / "pool.tif", workers=2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert after.ru_utime > before.ru_utime  # the tiles were decoded in worker processes
    np.testing.assert_array_equal(here, pool)
    assert torch.get_num_threads() == 1  # the fixture's: restored after the decode


def _fail(r: int, job: list[tile_rows.Tile]) -> None:
    return None  # what a worker reports for a job that raised


def _die(r: int, job: list[tile_rows.Tile]) -> None:
    os._exit(3)  # a worker killed mid-job (the out-of-memory killer, say)


@pytest.mark.parametrize("work", [_fail, _die])
def test_a_failed_or_lost_job_is_decoded_here(
    coded: Path, codec: LoadedCodec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: object
) -> None:
    here = _decode(coded, codec, tmp_path / "here.tif", workers=0)
    monkeypatch.setattr(tile_rows, "_work", work)  # the forked workers inherit the patch
    again = _decode(coded, codec, tmp_path / "again.tif", workers=2)
    np.testing.assert_array_equal(here, again)


def test_a_corrupt_tile_raises_the_same_error_with_workers(
    coded: Path, codec: LoadedCodec, tmp_path: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "faults"))
    import aec_craft

    raw, chunks = aec_craft.parse(coded.read_bytes())
    tiles = [i for i, (kind, _) in enumerate(chunks) if kind == b"TILE"]
    i = tiles[8]  # row 1, column 2 of 5
    row, col, groups, checksum = unpack_tile(chunks[i][1])
    g = bytearray(groups[0])
    g[len(g) // 2 : len(g) // 2 + 8] = bytes(8)  # altered stream, every CRC right
    chunks[i] = (b"TILE", pack_tile(row, col, [bytes(g)], checksum))
    bad = tmp_path / "bad.aec"
    bad.write_bytes(aec_craft.build(raw, chunks))
    errors = []
    for workers in (0, 2):
        out = tmp_path / f"out{workers}.tif"
        with pytest.raises(CorruptStreamError) as e:
            decompress_scene(bad, out, lambda h: codec, workers=workers)
        errors.append(str(e.value))
        assert not out.exists()
    assert errors[0] == errors[1] and f"tile ({row}, {col})" in errors[0]


def _round_trip(codec: LoadedCodec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(eval forward, compress) of a seeded 128 x 96 image at quality 4; decodes exactly."""
    torch.manual_seed(0)
    x = (0.5 + 0.1 * torch.randn(1, 1, 128, 96)).clamp(0, 1)
    with torch.no_grad():
        out = codec.model(x, quality=4)
        coded = codec.model.compress(x, quality=4)
        back = codec.model.decompress(**coded)["x_hat"]
    torch.testing.assert_close(back, out["x_hat"], rtol=0, atol=1e-6)
    return out, coded


def test_one_stage_derivation_codes_exactly_and_rates_as_predicted() -> None:
    base = load_codec(FOLDER / "wavelet-grdh-int.safetensors")
    fast = with_one_stage(base, 2)
    assert set(base.model.state_dict()) - set(fast.model.state_dict()) == {
        k for k in base.model.state_dict() if k.startswith(("context.rest.3.", "context.rest.4."))
    }
    assert fast.weights_sha256 == weights_sha256(fast.model.state_dict()) != base.weights_sha256
    out, coded = _round_trip(fast)
    bits = float(-torch.log2(out["likelihoods"]["y"]).sum())
    real = 8 * len(coded["strings"][0][0])
    assert abs(real - bits) <= 0.02 * bits + 64  # the coder spends what the model predicts
    with pytest.raises(ValueError, match="already codes 2"):
        with_one_stage(fast, 1)
    with pytest.raises(ValueError, match="one_stage"):
        with_one_stage(base, 6)


def test_scatter_decoding_equals_the_reference_decoder() -> None:
    rng = np.random.default_rng(0)
    lengths = np.array([4, 9, 33])
    pmf = rng.random((3, 33)) + 0.01
    coder = TableCoder(quantize_pmf(pmf, lengths), lengths, np.array([-1, -4, -16]))
    idx = rng.integers(0, 3, 5000)
    sym = rng.integers(-40, 40, 5000)  # many escapes, both sides
    sym[:3] = [2**30, -(2**30), 0]
    enc = StreamEncoder(coder)
    enc.encode(sym, idx)
    enc.encode(sym[::-1], idx)
    data = enc.finish()
    ref = StreamDecoder(coder, data)
    first, second = ref.decode(idx), ref.decode(idx)
    np.testing.assert_array_equal(first, sym)
    fast = StreamDecoder(coder, data)
    pos = rng.permutation(8000)[:5000]
    out = np.zeros(8000, np.float64)
    fast.decode_into(idx, out, pos)
    np.testing.assert_array_equal(out[pos], first)
    whole = np.zeros(5000, np.float64)
    fast.decode_into(idx.astype(np.uint8), whole, None)
    np.testing.assert_array_equal(whole, second)
    with pytest.raises(ValueError, match="out of range"):
        StreamDecoder(coder, data).decode_into(np.full(5000, 3), out, pos)


@pytest.mark.parametrize("exponent", [8, 14, 16])
@pytest.mark.parametrize("step", [0.0845, 0.6328, 2.0])
def test_lookup_table_indexes_equal_the_binary_search(exponent: int, step: float) -> None:
    table = tuple(float(v) for v in torch.exp(torch.linspace(np.log(0.11), np.log(256), 64)))
    t = thresholds(table, step, exponent)
    g = 2.0**exponent
    rng = np.random.default_rng(exponent)
    acc = np.concatenate([
        rng.integers(int(t[0] * g) - 50, int(t[-1] * g) + 50, 20000),
        (t * g).astype(np.int64), (t * g).astype(np.int64) - 1, [-(2**23), 2**23],
    ])  # fmt: skip
    r = (acc / g).astype(np.float32)
    want = np.searchsorted(t, r, side="right")
    np.testing.assert_array_equal(grid_indexes(r, table, step, exponent), want)


def test_at_parent_derivation_fits_only_the_new_nets_and_codes_exactly(tiny_root: Path) -> None:
    """Every other weight kept; the fit lowers the level's rate; seeded; files decode exactly."""
    base = with_one_stage(load_codec(FOLDER / "wavelet-grdh-int.safetensors"), 2)
    short = with_at_parent(base, 1, 8, tiny_root, steps=2, seed=3, crop=32)
    fitted = with_at_parent(base, 1, 8, tiny_root, steps=60, seed=3, crop=32)
    again = with_at_parent(base, 1, 8, tiny_root, steps=60, seed=3, crop=32)
    assert fitted.weights_sha256 == again.weights_sha256 != short.weights_sha256
    old, new = base.model.state_dict(), fitted.model.state_dict()
    assert set(old) == set(new)
    changed = {k for k in old if old[k].shape != new[k].shape or not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("context.anchor.4.") for k in changed)
    ctx = fitted.model.context
    assert ctx.at_parent == 1 and ctx.anchor[4].layers()[0].in_channels == 8
    assert fitted.spec["init_args"]["at_parent"] == 1
    out, _ = _round_trip(fitted)
    rough, _ = _round_trip(short)
    bits = float(-torch.log2(out["likelihoods"]["y"]).sum())
    assert bits < float(-torch.log2(rough["likelihoods"]["y"]).sum())  # the fit learned
    # (the coder's bytes against this estimate: on the shipped default, whose scales are
    # those of real data; a 60-step fit on 32-px crops predicts scales just above the table's
    # smallest, where the 16-bit tables cost several times the estimate's tiny zero-symbol bits)
    with pytest.raises(ValueError, match="at_parent"):
        with_at_parent(base, 3, 8, tiny_root, steps=1)  # level 2 is two-stage
    with pytest.raises(ValueError, match="positive"):
        with_at_parent(base, 1, 0, tiny_root, steps=1)
