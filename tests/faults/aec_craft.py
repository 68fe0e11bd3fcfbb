# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Crafted and damaged ``.aec`` files for the fault tests, plus a tiny codec to make real ones.

The crafter writes containers byte by byte, independently of ``ContainerWriter``, so it can
produce what the writer never would (a header of ``1e999``, a zlib bomb) with every CRC right:
the decoder must then refuse by content, not by checksum. Layout: ``autoenc/codec/container.py``.

* :func:`parse` splits a file into (header JSON bytes, [(kind, payload), ...]);
* :func:`build` writes them back with valid CRCs and a valid ``END`` record;
* :func:`crafted_cases` yields (name, bytes) of seeded header/chunk mutations with valid CRCs;
* :func:`damaged_cases` yields (name, bytes) of seeded flips/truncations/insertions, CRCs not
  fixed;
* :func:`tiny_codec_checkpoint` saves an untrained tiny model with coding tables and
  preprocessing, as ``autoenc fit`` would (seconds, no dataset);
* :func:`write_scene` writes a small GeoTIFF with rasterio directly.
"""

from __future__ import annotations

import copy
import json
import random
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"\x89AEC\r\n\x1a\n"
WINDOW = {"vmin_db": -25.0, "vmax_db": 5.0, "noise_floor_db": -30.0}

Chunks = list[tuple[bytes, bytes]]


# ---- container bytes -------------------------------------------------------------------------


def parse(data: bytes) -> tuple[bytes, Chunks]:
    """(header JSON bytes, chunks before END) of a valid container (inflated from version 3)."""
    version, n = struct.unpack_from("<HI", data, 8)
    raw = data[14 : 14 + n]
    if version >= 3:  # raw DEFLATE of the JSON
        raw = zlib.decompress(raw, -15)
    pos = 18 + n
    chunks: Chunks = []
    while True:
        kind, length = struct.unpack_from("<4sQ", data, pos)
        if kind == b"END ":
            return raw, chunks
        chunks.append((kind, data[pos + 12 : pos + 12 + length]))
        pos += 16 + length


def build(raw_header: bytes, chunks: Chunks, version: int = 3) -> bytes:
    """A container of ``raw_header`` (any bytes: JSON or not) and ``chunks``, every CRC and
    END right; from version 3 the header bytes are stored deflated, as the format says."""
    if version >= 3:
        raw_header = zlib.compress(raw_header, 9, wbits=-15)
    out = [MAGIC, struct.pack("<HI", version, len(raw_header)), raw_header]
    out.append(struct.pack("<I", zlib.crc32(raw_header)))
    for kind, payload in chunks:
        head = struct.pack("<4sQ", kind, len(payload))
        out += [head, payload, struct.pack("<I", zlib.crc32(payload, zlib.crc32(head)))]
    size = sum(map(len, out)) + 28
    end = struct.pack("<IQ", len(chunks), size)
    head = struct.pack("<4sQ", b"END ", len(end))
    out += [head, end, struct.pack("<I", zlib.crc32(end, zlib.crc32(head)))]
    return b"".join(out)


def dumps(header: Any) -> bytes:
    """Header JSON as the writer would write it, but allowing anything (NaN, Infinity)."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def with_header(data: bytes, header: Any) -> bytes:
    """``data`` with its header replaced by ``header`` (JSON), CRCs fixed."""
    _, chunks = parse(data)
    return build(dumps(header), chunks)


def zlib_bomb(inflated: int) -> bytes:
    """zlib of ``inflated`` zero bytes (about 1/1000 of that), built in 1 MiB pieces."""
    c = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = []
    left = inflated
    while left > 0:
        parts.append(c.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(c.flush())
    return b"".join(parts)


def mask_bomb(row: int, col: int, inflated: int) -> bytes:
    """A MASK payload whose validity bits inflate to ``inflated`` bytes."""
    z = zlib_bomb(inflated)
    return struct.pack("<III", row, col, len(z)) + z + zlib.compress(b"")


def invalid_bomb(payload: bytes, inflated: int) -> bytes:
    """A MASK payload (valid bits kept) whose invalid-values stream inflates to ``inflated``."""
    (n,) = struct.unpack_from("<I", payload, 8)
    return payload[: 12 + n] + zlib_bomb(inflated)


# ---- crafted cases (valid CRCs) ---------------------------------------------------------------

#: Replacement values tried on header fields: wrong types, huge/negative/non-finite numbers.
ODD_VALUES: list[Any] = [
    None, True, -1, 0, 1 << 40, -(1 << 62), 1.5, float("inf"), float("-inf"), float("nan"),
    "x", "", [], {}, [1, 2], {"a": 1}, 1e308, -1e308,
]  # fmt: skip


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into nested dicts/lists (lists: only their first items)."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d[:2]):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(d: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for k in path[:-1]:
        d = d[k]
    if delete:
        del d[path[-1]]
    else:
        d[path[-1]] = value


def crafted_cases(data: bytes, n: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` seeded mutations of a valid file, every CRC recomputed.

    A fixed list first (zlib bombs, ``1e999``, non-string geo fields, crafted EXCP chunks, the
    issue's cases), then random ones: a header field replaced by an odd value or deleted, a
    chunk payload byte flipped, a chunk truncated, dropped, duplicated or swapped.
    """
    rng = random.Random(seed)
    raw, chunks = parse(data)
    header = json.loads(raw)
    mask_at = [i for i, (k, _) in enumerate(chunks) if k == b"MASK"]
    tile_at = [i for i, (k, _) in enumerate(chunks) if k == b"TILE"]
    fixed: list[tuple[str, bytes]] = []

    def edited(name: str, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
        h = copy.deepcopy(header)
        _set(h, path, value, delete)
        fixed.append((name, build(dumps(h), chunks)))

    def chunk_edit(name: str, i: int, payload: bytes) -> None:
        fixed.append((name, build(raw, [*chunks[:i], (chunks[i][0], payload), *chunks[i + 1 :]])))

    for size in (1 << 24, 1 << 26):
        chunk_edit(f"mask_bomb_{size}", mask_at[0], mask_bomb(0, 0, size))
        chunk_edit(f"invalid_bomb_{size}", mask_at[0], invalid_bomb(chunks[mask_at[0]][1], size))
    for i in [k for k, (kind, _) in enumerate(chunks) if kind == b"EXCP"][:1]:  # format 2
        rc = chunks[i][1][:8]
        chunk_edit("excp_bomb", i, rc + struct.pack("<I", 2) + zlib_bomb(1 << 26))
        chunk_edit("excp_count_huge", i, rc + struct.pack("<I", 0xFFFFFFFF) + chunks[i][1][12:])
        chunk_edit("excp_count_zero", i, rc + struct.pack("<I", 0) + chunks[i][1][12:])
        chunk_edit("excp_repeated", i, rc + struct.pack("<I", 2) + zlib.compress(bytes(16)))
        far = zlib.compress(b"\xff" * 4 + bytes(4))  # one gap of 2**32 - 1 px
        chunk_edit("excp_outside_tile", i, rc + struct.pack("<I", 1) + far)
        edited("exceptions.step_db=0", ("exceptions", "step_db"), 0)
        edited("exceptions.mode=clip", ("exceptions",), {"mode": "clip"})
    fixed.append(("window_1e999", raw.replace(b'"vmax_db":5.0', b'"vmax_db":1e999')))
    fixed[-1] = (fixed[-1][0], build(fixed[-1][1], chunks))
    for key in ("description", "units"):
        for value in (5, ["VV"], {"a": "b"}, True):
            edited(f"geo.{key}={value!r}", ("geo", key), value)
    edited("tiling.latent_halo+1", ("tiling", "latent_halo"), header["tiling"]["latent_halo"] + 1)
    edited("tiling.factor/2", ("tiling", "factor"), header["tiling"]["factor"] // 2)
    edited("tiling.tile*2", ("tiling", "tile"), header["tiling"]["tile"] * 2)
    edited("scene.height+1", ("scene", "height"), header["scene"]["height"] + 1)
    edited("scene.width-1", ("scene", "width"), header["scene"]["width"] - 1)
    edited("huge_scene", ("scene",), {**header["scene"], "height": 1 << 20, "width": 1 << 20})
    for dt in ("int8", "uint64", "complex64", "float16", "bool", "object", "<U4", "V8", ">f4"):
        edited(f"dtype={dt}", ("input", "dtype"), dt)
    edited("transform_strings", ("geo", "transform"), ["a"] * 6)
    edited("transform_short", ("geo", "transform"), [1.0, 2.0])
    edited("gcp_strings", ("geo", "gcps"), [{"row": "a", "col": 1, "x": 1, "y": 1}])
    edited("tags_nested", ("geo", "tags"), {"a": {"b": 1}})
    edited("nodata_str", ("geo", "nodata"), "abc")
    edited("cal_lut_bad", ("input", "calibration"), {"lut": {"lines": "x"}})
    edited("cal_constant_neg", ("input", "calibration"), {"constant": -1.0})
    fixed.append(("header_is_list", build(b"[1,2,3]", chunks)))
    fixed.append(("header_deep", build(b"[" * 100000 + b"]" * 100000, chunks)))
    for i in rng.sample(tile_at, min(30, len(tile_at))):
        p = bytearray(chunks[i][1])
        j = rng.randrange(13, max(14, len(p) - 5))  # inside the entropy-coded strings
        p[j] ^= 1 << rng.randrange(8)
        chunk_edit(f"tile_flip_{i}_{j}", i, bytes(p))
    yield from fixed[:n]

    paths = [p for p in _paths(header)]
    k = len(fixed)
    while k < n:
        k += 1
        r = rng.random()
        if r < 0.45:
            path = rng.choice(paths)
            h = copy.deepcopy(header)
            if rng.random() < 0.2:
                _set(h, path, None, delete=True)
                yield f"del {path}", build(dumps(h), chunks)
            else:
                v = rng.choice(ODD_VALUES)
                _set(h, path, v)
                yield f"{path}={v!r}", build(dumps(h), chunks)
        elif r < 0.75:
            i = rng.randrange(len(chunks))
            p = bytearray(chunks[i][1])
            if not p:
                continue
            j = rng.randrange(len(p))
            p[j] ^= 1 << rng.randrange(8)
            yield (
                f"flip {chunks[i][0]!r}#{i}@{j}",
                build(raw, [*chunks[:i], (chunks[i][0], bytes(p)), *chunks[i + 1 :]]),
            )
        elif r < 0.85:
            i = rng.randrange(len(chunks))
            cut = rng.randrange(len(chunks[i][1]) + 1)
            yield (
                f"cut {chunks[i][0]!r}#{i}:{cut}",
                build(raw, [*chunks[:i], (chunks[i][0], chunks[i][1][:cut]), *chunks[i + 1 :]]),
            )
        else:
            i, j = rng.randrange(len(chunks)), rng.randrange(len(chunks))
            op = rng.choice(["drop", "dup", "swap"])
            new = list(chunks)
            if op == "drop":
                del new[i]
            elif op == "dup":
                new.insert(j, chunks[i])
            else:
                new[i], new[j] = new[j], new[i]
            yield f"{op} #{i} #{j}", build(raw, new)


def damaged_cases(data: bytes, n: int, seed: int = 1) -> Iterator[tuple[str, bytes]]:
    """``n`` seeded flips, truncations and insertions; CRCs are not fixed."""
    rng = random.Random(seed)
    for _ in range(n):
        r = rng.random()
        pos = rng.randrange(len(data))
        if r < 0.6:
            new = rng.choice([b for b in range(256) if b != data[pos]])
            yield f"flip@{pos}", data[:pos] + bytes([new]) + data[pos + 1 :]
        elif r < 0.8:
            yield f"cut@{pos}", data[:pos]
        else:
            extra = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
            yield f"insert@{pos}", data[:pos] + extra + data[pos:]


# ---- a tiny codec and scenes ------------------------------------------------------------------


def tiny_codec_checkpoint(path: Path, name: str = "HyperpriorAutoencoder") -> Path:
    """An untrained tiny ``name`` saved as ``autoenc fit`` saves one (tables, preprocessing)."""
    import torch

    from autoenc.models import create_model, model_spec
    from autoenc.sar.preprocessing import Preprocessing
    from autoenc.task import CompressionTask

    torch.manual_seed(0)
    kw: dict[str, Any] = {"latent_channels": 8, "base_channels": 4}
    if name == "HyperpriorAutoencoder":
        kw.update(blocks_per_stage=1, hyper_channels=8)
    task = CompressionTask(model=create_model(name, **kw))
    task.preprocessing = Preprocessing.from_dict({"normalisation": dict(WINDOW)})
    ckpt: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": {"model": model_spec(task.model)},
    }
    task.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return path


def write_scene(
    path: Path,
    a: np.ndarray,
    crs: bool = True,
    transform: bool = True,
    nodata: float | None = None,
    **profile: Any,
) -> Path:
    """Write a single-band GeoTIFF of ``a`` with rasterio (UTM CRS, 10 m pixels by default)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    h, w = a.shape
    kw: dict[str, Any] = dict(driver="GTiff", height=h, width=w, count=1, dtype=a.dtype.name)
    if crs:
        kw["crs"] = CRS.from_epsg(32633)
    if transform:
        kw["transform"] = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0)
    if nodata is not None:
        kw["nodata"] = nodata
    kw.update(profile)
    with rasterio.open(path, "w", **kw) as f:
        f.write(a, 1)
    return path


def sigma0(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Linear σ⁰ float32: two land covers (-21 / -3 dB) with exponential speckle."""
    rng = np.random.default_rng(seed)
    h, w = shape
    db = np.where(np.arange(w)[None, :] < w // 2, -21.0, -3.0) * np.ones((h, 1))
    return (10 ** (db / 10) * rng.exponential(1.0, (h, w))).astype(np.float32)


def scene_with_invalid(shape: tuple[int, int] = (100, 130), seed: int = 0) -> np.ndarray:
    """:func:`sigma0` with a zero border column, a zero bottom row and a -9999 nodata block."""
    a = sigma0(shape, seed)
    a[:, :3] = 0
    a[-1, :] = 0
    a[40:44, 60:70] = NODATA
    return a


NODATA = -9999.0


def compress_args(src: Path, dst: Path, ckpt: Path, *extra: str) -> list[str]:
    """``autoenc compress`` arguments for the tiny codec (64-px tiles)."""
    return ["compress", str(src), "-o", str(dst), "--ckpt", str(ckpt), "--tile", "64",
            "--quiet", *extra]  # fmt: skip


def decompress_args(src: Path, dst: Path, ckpt: Path, *extra: str) -> list[str]:
    """``autoenc decompress`` arguments for the tiny codec."""
    return ["decompress", str(src), "-o", str(dst), "--ckpt", str(ckpt), "--quiet", *extra]


def tiny_case(folder: Path) -> tuple[Path, Path, Path]:
    """(checkpoint, GeoTIFF with invalid pixels, its valid .aec) in ``folder``."""
    from autoenc.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    ckpt = tiny_codec_checkpoint(folder / "tiny.ckpt")
    tif = write_scene(folder / "scene.tif", scene_with_invalid(), nodata=NODATA)
    aec = folder / "scene.aec"
    if main(compress_args(tif, aec, ckpt)) != 0:
        raise RuntimeError("the tiny codec failed to compress its own scene")
    return ckpt, tif, aec
