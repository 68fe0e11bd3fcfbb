# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Issue 12, the codec's reading/writing path: each test reproduces one reported failure.

A tiny untrained hyperprior (``aec_craft.tiny_codec_checkpoint``) codes a 100 x 130 scene in
64-px tiles in about a second; crafted files come from ``aec_craft`` (valid CRCs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
import zlib
from pathlib import Path

import aec_craft as ac
import numpy as np
import pytest
import rasterio

from autoenc.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(checkpoint, scene.tif, scene.aec), shared read-only by the module."""
    return ac.tiny_case(tmp_path_factory.mktemp("codec_faults"))


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _one_line(err: str) -> None:
    assert err.startswith("autoenc: error: ") and err.count("\n") == 1, err


# ---- item 3: -o equal to the input -----------------------------------------------------------


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "relative"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_output_that_is_the_input_is_refused(
    how: str, overwrite: bool, case: tuple[Path, Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Issue 12 item 3: `compress x.tif -o x.tif` replaced the GeoTIFF by the .aec (exit 0)."""
    ckpt, tif0, aec0 = case
    for src0, cmd in ((tif0, ac.compress_args), (aec0, ac.decompress_args)):
        src = tmp_path / src0.name
        src.write_bytes(src0.read_bytes())
        before = src.read_bytes()
        if how == "same":
            out = src
        elif how == "symlink":
            out = tmp_path / f"link{src.suffix}"
            out.symlink_to(src)
        elif how == "hardlink":
            out = tmp_path / f"hard{src.suffix}"
            os.link(src, out)
        else:
            out = tmp_path / ".." / tmp_path.name / "." / src.name
        extra = ["--overwrite"] if overwrite else []
        assert main(cmd(src, out, ckpt, *extra)) == 2
        err = _err(capsys)
        _one_line(err)
        assert "is the input" in err
        assert src.read_bytes() == before
        for p in (src, out):
            p.unlink(missing_ok=True)


def test_output_that_is_the_checkpoint_is_refused(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt0, tif, aec = case
    ckpt = tmp_path / "tiny.ckpt"
    ckpt.write_bytes(ckpt0.read_bytes())
    before = ckpt.read_bytes()
    assert main(ac.compress_args(tif, ckpt, ckpt, "--overwrite")) == 2
    assert main(ac.decompress_args(aec, ckpt, ckpt, "--overwrite")) == 2
    assert "is the input" in _err(capsys)
    assert ckpt.read_bytes() == before


# ---- smaller: existing outputs, --overwrite ----------------------------------------------------


def test_existing_output_is_refused_unless_overwrite(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (smaller): existing outputs were overwritten silently."""
    ckpt, tif, aec = case
    for src, name, cmd in ((tif, "x.aec", ac.compress_args), (aec, "x.tif", ac.decompress_args)):
        out = tmp_path / name
        out.write_bytes(b"precious")
        assert main(cmd(src, out, ckpt)) == 2
        err = _err(capsys)
        _one_line(err)
        assert str(out) in err and "--overwrite" in err
        assert out.read_bytes() == b"precious"
        assert main(cmd(src, out, ckpt, "--overwrite")) == 0
        capsys.readouterr()  # the successful run's summary and warnings are not under test
        assert out.read_bytes() != b"precious" and out.stat().st_size > 1000
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temp file left
        out.unlink()


def test_several_inputs_onto_one_output_are_refused(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, tif, _ = case
    (tmp_path / "a").mkdir()
    other = tmp_path / "a" / tif.name
    other.write_bytes(tif.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    args = ["compress", str(tif), str(other), "-o", str(out), "--ckpt", str(ckpt), "--quiet"]
    assert main(args) == 2
    assert "would both write" in _err(capsys)
    assert list(out.iterdir()) == []


def test_library_api_keeps_replacing_by_default(
    case: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """compress_scene/decompress_scene: overwrite=True by default (benchmarks rely on it)."""
    from autoenc.atomic import OutputExistsError
    from autoenc.codec.model_io import load_codec
    from autoenc.codec.scene import compress_scene, decompress_scene

    ckpt, tif, aec = case
    codec = load_codec(ckpt)
    dst = tmp_path / "x.aec"
    for _ in range(2):
        compress_scene(tif, dst, codec, tile=64)
    with pytest.raises(OutputExistsError):
        compress_scene(tif, dst, codec, tile=64, overwrite=False)
    out = tmp_path / "x.tif"
    for _ in range(2):
        decompress_scene(aec, out, lambda header: codec)
    with pytest.raises(ValueError, match="is the input"):
        compress_scene(tif, tif, codec, tile=64)


# ---- item 4: the dtype matrix ----------------------------------------------------------------

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16",
          "float32", "float64", "complex64", "complex128", "complex_int16"]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_matrix_round_trips_or_is_refused_at_compress(
    dtype: str, case: tuple[Path, Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Issue 12 item 4: int8/int64/uint64 compressed (exit 0) but never decompressed (exit 4)."""
    ckpt = case[0]
    s0 = ac.scene_with_invalid()
    integer = dtype.startswith(("int", "uint"))
    if integer:  # amplitude DN = sqrt(sigma0) * 10: --calibration 10
        a = np.where(s0 > 0, np.sqrt(np.maximum(s0, 0)) * 10.0, 0.0)
        a = np.clip(np.rint(a), 1, 100) * (s0 > 0)
        extra = ["--calibration", "10"]
    else:
        a, extra = np.where(s0 > 0, s0, 0.0), ["--input-kind", "intensity"]
    src = tmp_path / "in.tif"
    try:
        arr = a.astype(dtype if dtype != "complex_int16" else "complex64")
        if dtype == "complex_int16":
            ac.write_scene(src, arr.astype(np.complex64), dtype="complex_int16")
        else:
            ac.write_scene(src, arr)
    except Exception as e:  # GDAL without the type (float16 before GDAL 3.11)
        from autoenc.codec.dtypes import check_scene_dtype

        with pytest.raises(ValueError, match="supported"):
            check_scene_dtype(np.dtype(dtype), "x.tif")
        print(f"\n[dtype] {dtype}: no GeoTIFF of it can be written here ({type(e).__name__})")
        return
    aec, out = tmp_path / "in.aec", tmp_path / "out.tif"
    code = main(ac.compress_args(src, aec, ckpt, *extra))
    err = _err(capsys)
    if code != 0:
        assert code == 2, err
        _one_line(err)
        assert "supported" in err and "in.tif" in err and dtype.split("_")[0] in err
        assert not aec.exists()
        print(f"\n[dtype] {dtype}: refused at compress")
        return
    assert main(ac.decompress_args(aec, out, ckpt)) == 0, _err(capsys)
    with rasterio.open(src) as f:
        a_in = f.read(1)
    with rasterio.open(out) as f:
        a_out = f.read(1)
        assert f.dtypes[0] == a_in.dtype.name
    bad = ~(a_in > 0)
    assert np.array_equal(a_out[bad], a_in[bad])  # invalid pixels bit-exact
    assert np.all(np.isfinite(a_out[~bad].astype(np.float64))) and np.all(a_out[~bad] > 0)
    print(f"\n[dtype] {dtype}: round trip")


# ---- item 7: zlib bombs ------------------------------------------------------------------------


def test_mask_zlib_bomb_is_refused_in_bounded_memory(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 7: a MASK inflating to 1 GiB peaked at 2.5 GB before exit 4."""
    ckpt, _, aec = case
    raw, chunks = ac.parse(aec.read_bytes())
    i = next(i for i, (k, _) in enumerate(chunks) if k == b"MASK")
    seen: list[str] = []
    for name, payload in (
        ("mask", ac.mask_bomb(0, 0, 1 << 28)),
        ("invalid", ac.invalid_bomb(chunks[i][1], 1 << 28)),
    ):
        bomb = tmp_path / f"{name}.aec"
        bomb.write_bytes(ac.build(raw, [*chunks[:i], (b"MASK", payload), *chunks[i + 1 :]]))
        assert bomb.stat().st_size < (1 << 28) // 500
        tracemalloc.start()
        try:
            code = main(ac.decompress_args(bomb, tmp_path / "out.tif", ckpt))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        err = _err(capsys)
        seen.append(f"{name}: {bomb.stat().st_size} bytes, peak {peak / 2**20:.1f} MiB traced")
        assert code == 4, err
        assert "inflates to more than" in err
        assert peak < 32 * 2**20  # the bomb inflates to 256 MiB
        assert not (tmp_path / "out.tif").exists()
    print("\n[bomb] " + "; ".join(seen))


def test_inflate_is_exact_and_bounded() -> None:
    from autoenc.codec.payload import PayloadError, inflate

    data = bytes(range(256)) * 4
    z = zlib.compress(data)
    assert inflate(z, len(data), "x") == data
    assert inflate(zlib.compress(b""), 0, "x") == b""
    for bad, size, match in (
        (z, len(data) - 1, "more than"),
        (z, len(data) + 1, "holds"),
        (z[:-3], len(data), "does not end|truncated|bad zlib"),
        (z + b"x", len(data), "after the zlib stream"),
        (b"not zlib", 3, "bad zlib"),
        (ac.zlib_bomb(1 << 26), 10, "more than"),
    ):
        with pytest.raises(PayloadError, match=match):
            inflate(bad, size, "x")


# ---- item 8: tracebacks on crafted files --------------------------------------------------------


def test_crafted_tile_bytes_are_corrupt_never_a_traceback(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 8: a flipped entropy-coded byte (CRC fixed) raised AssertionError."""
    ckpt, _, aec = case
    data = aec.read_bytes()
    raw, chunks = ac.parse(data)
    tiles = [i for i, (k, _) in enumerate(chunks) if k == b"TILE"]
    rng = np.random.default_rng(8)
    codes: dict[int, int] = {}
    undecodable = 0
    bad, out = tmp_path / "bad.aec", tmp_path / "out.tif"
    for _ in range(30):
        i = int(rng.choice(tiles))
        p = bytearray(chunks[i][1])
        p[int(rng.integers(13, len(p) - 5))] ^= 1 << int(rng.integers(8))
        bad.write_bytes(ac.build(raw, [*chunks[:i], (b"TILE", bytes(p)), *chunks[i + 1 :]]))
        code = main(ac.decompress_args(bad, out, ckpt, "--overwrite"))
        err = _err(capsys)
        codes[code] = codes.get(code, 0) + 1
        undecodable += "does not decode" in err or "bytes were altered" in err
        if code == 0:
            with rasterio.open(out) as f:
                assert np.isfinite(f.read(1)).all()
    print(f"\n[tile flips] exit codes {codes}, {undecodable} refused by the entropy decoder")
    assert set(codes) <= {0, 4}  # never 1 (traceback) nor 6 (the file was encoded on this cpu)
    assert undecodable > 0


def _crafted(aec: Path, tmp_path: Path, edit: object) -> Path:
    header = json.loads(ac.parse(aec.read_bytes())[0])
    edit(header)  # type: ignore[operator]
    path = tmp_path / "crafted.aec"
    path.write_bytes(ac.with_header(aec.read_bytes(), header))
    return path


HEADER_EDITS = {
    # name: (edit, what the message must name)
    "geo.description=5": (lambda h: h["geo"].update(description=5), "description"),
    "geo.units=list": (lambda h: h["geo"].update(units=["dB"]), "units"),
    "tiling.factor/2": (lambda h: h["tiling"].update(factor=h["tiling"]["factor"] // 2),
                        "tiling.factor"),
    "tiling.tile*2": (lambda h: h["tiling"].update(tile=h["tiling"]["tile"] * 2), "TILE"),
    "scene.height+1": (lambda h: h["scene"].update(height=h["scene"]["height"] + 1), "mask"),
    "scene.width+16": (lambda h: h["scene"].update(width=h["scene"]["width"] + 16), "mask"),
    "window=inf": (lambda h: h["preprocessing"]["normalisation"].update(vmax_db=float("inf")),
                   "Infinity"),
    "window=1e300": (lambda h: h["preprocessing"]["normalisation"].update(vmax_db=1e300),
                     "vmax_db"),
    "dtype=complex": (lambda h: h["input"].update(dtype="complex64"), "input.dtype"),
    "nodata=1e300 for uint8": (lambda h: (h["input"].update(dtype="uint8"),
                                          h["geo"].update(nodata=1e300)), "nodata"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HEADER_EDITS))
def test_crafted_header_fields_are_corrupt_naming_the_field(
    name: str, case: tuple[Path, Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Issue 12 item 8 and the crafted tiling header (exit 6 "another kind of device")."""
    ckpt, _, aec = case
    edit, field = HEADER_EDITS[name]
    crafted = _crafted(aec, tmp_path, edit)
    out = tmp_path / "out.tif"
    code = main(ac.decompress_args(crafted, out, ckpt))
    err = _err(capsys)
    assert code == 4, err
    _one_line(err)
    assert "corrupt file" in err and field in err, err
    assert not out.exists()


def test_header_number_1e999_is_refused(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 item 8: JSON parses 1e999 to inf, which passed the no-NaN/Infinity rule."""
    ckpt, _, aec = case
    raw, chunks = ac.parse(aec.read_bytes())
    assert b'"vmax_db":5.0' in raw
    crafted = tmp_path / "inf.aec"
    crafted.write_bytes(ac.build(raw.replace(b'"vmax_db":5.0', b'"vmax_db":1e999'), chunks))
    out = tmp_path / "out.tif"
    assert main(ac.decompress_args(crafted, out, ckpt)) == 4
    err = _err(capsys)
    assert "1e999" in err and not out.exists()


def test_checksum_mismatch_of_a_file_from_another_device_is_still_exit_6(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 6 stays for what it means: a valid file of another device whose checksums differ."""
    ckpt, _, aec = case
    raw, chunks = ac.parse(aec.read_bytes())
    header = json.loads(raw)
    header["device"] = "cuda"
    i = next(i for i, (k, _) in enumerate(chunks) if k == b"TILE")
    p = bytearray(chunks[i][1])
    p[-4] ^= 0xFF  # the stored checksum itself: every string still decodes
    bad = tmp_path / "gpu.aec"
    bad.write_bytes(
        ac.build(ac.dumps(header), [*chunks[:i], (b"TILE", bytes(p)), *chunks[i + 1 :]])
    )
    assert main(ac.decompress_args(bad, tmp_path / "o.tif", ckpt)) == 6
    assert "another kind of device" in _err(capsys)
    header["device"] = "cpu"
    bad.write_bytes(
        ac.build(ac.dumps(header), [*chunks[:i], (b"TILE", bytes(p)), *chunks[i + 1 :]])
    )
    assert main(ac.decompress_args(bad, tmp_path / "o.tif", ckpt)) == 4
    assert "bytes were altered" in _err(capsys)


# ---- smaller ones --------------------------------------------------------------------------------


def test_truncated_tiff_error_shows_the_cause(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (smaller): "See previous exception" without showing it."""
    ckpt = case[0]
    big = ac.write_scene(tmp_path / "big.tif", ac.sigma0((300, 300)))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    assert main(ac.compress_args(cut, tmp_path / "x.aec", ckpt)) == 2
    err = _err(capsys)
    _one_line(err)
    assert "cut.tif" in err and "See previous exception" not in err
    assert "TIFFRead" in err or "IReadBlock" in err, err


def test_unwritable_folder_error_names_the_target(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Issue 12 (smaller): the read-only-folder error named the hidden temp file."""
    ckpt, tif, aec = case
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: fail the temp file as the kernel would

        def refuse(*_: object, **kw: object) -> tuple[int, str]:
            name = os.path.join(str(kw.get("dir")), f"{kw.get('prefix')}abcd{kw.get('suffix')}")
            raise PermissionError(13, "Permission denied", name)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    try:
        for src, name, cmd in (
            (tif, "x.aec", ac.compress_args),
            (aec, "x.tif", ac.decompress_args),
        ):
            assert main(cmd(src, ro / name, ckpt)) == 2
            err = _err(capsys)
            _one_line(err)
            assert f"cannot write {ro / name}" in err and str(ro) in err
            assert ".tmp" not in err, err
    finally:
        ro.chmod(0o755)


def test_transform_without_crs_comes_back(case: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """Issue 12 (smaller): a geotransform without a CRS came back as the identity."""
    ckpt = case[0]
    src = ac.write_scene(tmp_path / "nocrs.tif", ac.scene_with_invalid(), crs=False,
                         nodata=ac.NODATA)  # fmt: skip
    with rasterio.open(src) as f:
        assert f.crs is None and not f.transform.is_identity
        want = f.transform
    aec, out = tmp_path / "nocrs.aec", tmp_path / "out.tif"
    assert main(ac.compress_args(src, aec, ckpt)) == 0
    assert main(ac.decompress_args(aec, out, ckpt)) == 0
    with rasterio.open(out) as f:
        assert f.crs is None
        assert f.transform == want


@pytest.mark.parametrize("fill", ["nan", "zero", "nodata"])
def test_scene_without_a_valid_pixel_is_refused(
    fill: str, case: tuple[Path, Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Issue 12 (smaller): an all-NaN scene compressed to 0.95 bpp without a word."""
    ckpt = case[0]
    value = {"nan": np.nan, "zero": 0.0, "nodata": ac.NODATA}[fill]
    src = ac.write_scene(tmp_path / "empty.tif", np.full((70, 90), value, np.float32),
                         nodata=ac.NODATA)  # fmt: skip
    out = tmp_path / "empty.aec"
    assert main(ac.compress_args(src, out, ckpt, "--input-kind", "intensity")) == 2
    err = _err(capsys)
    _one_line(err)
    assert "empty.tif" in err and "no valid pixel" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif"]


def test_stale_temp_files_of_dead_runs_are_removed(
    case: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Issue 12 (smaller): temp files of killed runs were never cleaned."""
    ckpt, tif, _ = case
    target = tmp_path / "x.aec"
    # A process that dies holding a temp file of the target (what kill -9 leaves).
    code = f"from pathlib import Path; from autoenc.atomic import make_temp; " \
           f"make_temp(Path({str(target)!r})).write_bytes(b'x' * 1000)"  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([sys.executable, "-c", code], check=True)
    stale = sorted(p.name for p in tmp_path.iterdir())  # the second removed the first's
    assert len(stale) == 1 and stale[0].startswith(".x.aec.") and stale[0].endswith(".tmp")
    # a temp file of a live process (this one) and one of another target are kept
    from autoenc.atomic import make_temp

    live, other = make_temp(target), make_temp(tmp_path / "y.aec")
    assert main(ac.compress_args(tif, target, ckpt)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "x.aec"])


def test_no_overwrite_holds_even_when_the_output_appears_meanwhile(tmp_path: Path) -> None:
    """Without --overwrite, a file created while the output was being written is kept."""
    from autoenc.atomic import OutputExistsError
    from autoenc.codec.container import ContainerWriter
    from autoenc.sar.geotiff import GeoTiffWriter

    aec, tif = tmp_path / "x.aec", tmp_path / "x.tif"
    with pytest.raises(OutputExistsError), ContainerWriter(aec, {"k": 1}, overwrite=False) as w:
        w.add_chunk(b"DATA", b"123")
        aec.write_bytes(b"someone else's")
    with pytest.raises(OutputExistsError), GeoTiffWriter(tif, 4, 4, "uint8", overwrite=False) as g:
        g.write(np.ones((4, 4), np.uint8), 0, 0)
        tif.write_bytes(b"someone else's")
    assert aec.read_bytes() == tif.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aec", "x.tif"]
