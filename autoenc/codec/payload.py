# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Chunk payloads of a scene ``.aec`` file, validation of its header and of its chunk layout.

``TILE`` (one per tile, row-major): ``u32 row, u32 col, u8 groups``, then per group
``u32 length + bytes`` (the entropy-coded strings: ``y``, or ``y`` and ``z``), then
``u8 has_checksum, u32 checksum`` (CRC32 of the hyperprior's scale indexes).
``MASK`` (one per tile): ``u32 row, u32 col, u32 n``, ``n`` bytes of zlib(np.packbits(valid))
over the tile's pixels inside the scene (row-major), then zlib of the raw values of its invalid
pixels in the input dtype, so they come back bit-exact. ``STAT``: JSON statistics.
Every reader checks every length against the payload, so a corrupt file fails cleanly.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.codec.container import ContainerReader, CorruptStreamError
from autoenc.tiling import TileGrid

_U32 = struct.Struct("<I")
_RC = struct.Struct("<III")
MAX_SCENE_SIDE = 1 << 20


class PayloadError(ValueError):
    """A payload that does not parse (wrapped into CorruptStreamError by the caller)."""


def pack_tile(row: int, col: int, groups: Sequence[bytes], checksum: int | None) -> bytes:
    """Serialise one tile's entropy-coded strings."""
    parts = [struct.pack("<IIB", row, col, len(groups))]
    for g in groups:
        parts += [_U32.pack(len(g)), g]
    parts.append(struct.pack("<BI", checksum is not None, checksum or 0))
    return b"".join(parts)


def unpack_tile(data: bytes) -> tuple[int, int, list[bytes], int | None]:
    """Inverse of :func:`pack_tile`."""
    try:
        row, col, n = struct.unpack_from("<IIB", data, 0)
        pos = 9
        groups = []
        for _ in range(n):
            (length,) = _U32.unpack_from(data, pos)
            pos += 4
            if pos + length > len(data):
                raise PayloadError(f"group length {length} runs past the payload")
            groups.append(data[pos : pos + length])
            pos += length
        has, checksum = struct.unpack_from("<BI", data, pos)
        if pos + 5 != len(data) or has > 1:
            raise PayloadError("trailing or malformed checksum field")
    except struct.error as e:
        raise PayloadError(f"truncated tile payload: {e}") from None
    return row, col, groups, checksum if has else None


def pack_mask(row: int, col: int, valid: NDArray[np.bool_], raw: NDArray[Any]) -> bytes:
    """Mask of a tile (h, w) plus the raw values of its invalid pixels, losslessly."""
    mask_z = zlib.compress(np.packbits(valid.ravel()).tobytes(), 6)
    invalid_z = zlib.compress(np.ascontiguousarray(raw[~valid]).tobytes(), 6)
    return _RC.pack(row, col, len(mask_z)) + mask_z + invalid_z


def unpack_mask(
    data: bytes, shape: tuple[int, int], dtype: np.dtype[Any]
) -> tuple[int, int, NDArray[np.bool_], NDArray[Any]]:
    """Inverse of :func:`pack_mask` for a tile of ``shape`` and the input ``dtype``."""
    try:
        row, col, n = _RC.unpack_from(data, 0)
        if 12 + n > len(data):
            raise PayloadError(f"mask length {n} runs past the payload")
        count = shape[0] * shape[1]
        bits = zlib.decompress(data[12 : 12 + n], bufsize=count // 8 + 1)
        if len(bits) != (count + 7) // 8:
            raise PayloadError(f"mask holds {len(bits)} bytes, tile needs {(count + 7) // 8}")
        valid = np.unpackbits(np.frombuffer(bits, np.uint8), count=count).astype(bool)
        invalid = int(count - valid.sum())
        raw = zlib.decompress(data[12 + n :], bufsize=invalid * dtype.itemsize + 1)
        if len(raw) != invalid * dtype.itemsize:
            raise PayloadError(f"{len(raw)} bytes of invalid values for {invalid} pixels")
    except (struct.error, zlib.error) as e:
        raise PayloadError(f"bad mask payload: {e}") from None
    return row, col, valid.reshape(shape), np.frombuffer(raw, dtype=dtype)


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise PayloadError(f"header field {what} is missing or invalid")


def _int(d: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, key)
    return int(v)  # type: ignore[arg-type]


def check_header(h: dict[str, Any], path: str) -> None:
    """Validate a scene header before any of it is trusted.

    Raises:
        CorruptStreamError: a missing or out-of-range field (named).
    """
    try:
        _need(h.get("kind") == "autoenc-scene", "kind")
        scene, tiling = h.get("scene"), h.get("tiling")
        _need(isinstance(scene, dict) and isinstance(tiling, dict), "scene/tiling")
        assert isinstance(scene, dict) and isinstance(tiling, dict)
        _int(scene, "height", 1, MAX_SCENE_SIDE)
        _int(scene, "width", 1, MAX_SCENE_SIDE)
        f = _int(tiling, "factor", 1, 1024)
        tile = _int(tiling, "tile", f, MAX_SCENE_SIDE)
        _need(tile % f == 0, "tiling.tile")
        halo = _int(tiling, "halo", 0, MAX_SCENE_SIDE)
        _need(halo % f == 0, "tiling.halo")
        _int(tiling, "latent_halo", 0, MAX_SCENE_SIDE)
        model, pre, inp = h.get("model"), h.get("preprocessing"), h.get("input")
        _need(isinstance(model, dict) and isinstance(model.get("weights_sha256"), str), "model")
        _need(isinstance(pre, dict) and isinstance(pre.get("normalisation"), dict), "preprocessing")
        _need(
            isinstance(inp, dict) and inp.get("kind") in ("amplitude", "intensity", "db"), "input"
        )
        assert isinstance(inp, dict) and isinstance(pre, dict)
        _need(str(inp.get("dtype")) in ("uint8", "uint16", "int16", "int32", "uint32",
                                          "float32", "float64"), "input.dtype")  # fmt: skip
        norm = pre["normalisation"]
        for k in ("vmin_db", "vmax_db", "noise_floor_db"):
            _need(isinstance(norm.get(k), (int, float)), f"normalisation.{k}")
        _need(norm["vmin_db"] < norm["vmax_db"], "normalisation window")
        _need(isinstance(h.get("geo"), dict), "geo")
    except PayloadError as e:
        raise CorruptStreamError(path, 0, str(e)) from None


def check_layout(reader: ContainerReader, grid: TileGrid, path: str) -> dict[str, list[Any]]:
    """Every TILE and MASK present exactly once in row-major order, one STAT: else corrupt."""
    entries = reader.validate()
    kinds: dict[str, list[Any]] = {"TILE": [], "MASK": [], "STAT": []}
    for e in entries:
        k = e.kind.decode("ascii")
        if k not in kinds:
            raise CorruptStreamError(path, e.offset, f"unexpected chunk type {k!r}")
        kinds[k].append(e)
    rows, cols = grid.shape
    ph, pw = grid.padded
    # Every core starts inside the scene (the padding is < factor <= tile), so each tile has a
    # MASK. No loop over the grid: a crafted header could declare billions of tiles.
    n_mask = rows * cols
    if len(kinds["TILE"]) != rows * cols or len(kinds["MASK"]) != n_mask or len(kinds["STAT"]) != 1:
        raise CorruptStreamError(
            path,
            0,
            f"expected {rows * cols} TILE, {n_mask} MASK and 1 STAT chunks, found "
            f"{len(kinds['TILE'])}, {len(kinds['MASK'])} and {len(kinds['STAT'])}",
        )
    return kinds
