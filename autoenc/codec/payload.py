# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Chunk payloads of a scene ``.aec`` file and validation of its chunk layout.

``TILE`` (one per tile, row-major): ``u32 row, u32 col, u8 groups``, then per group
``u32 length + bytes`` (the entropy-coded strings: ``y``, or ``y`` and ``z``), then
``u8 has_checksum, u32 checksum`` (CRC32 of the hyperprior's scale indexes).
``MASK`` (one per tile): ``u32 row, u32 col, u32 n``, ``n`` bytes of zlib(np.packbits(valid))
over the tile's pixels inside the scene (row-major), then zlib of the raw values of its invalid
pixels in the input dtype, so they come back bit-exact. ``STAT``: JSON statistics (at most
``MAX_STAT_BYTES``). Every reader checks every length against the payload, and every inflate is
bounded by the size the tile needs (:func:`inflate`), so a corrupt file fails cleanly and
cheaply.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.codec.container import ChunkEntry, ContainerReader, CorruptStreamError
from autoenc.tiling import TileGrid

_U32 = struct.Struct("<I")
_RC = struct.Struct("<III")
MAX_STAT_BYTES = 1 << 16


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


def inflate(data: bytes, size: int, what: str) -> bytes:
    """zlib-decompress ``data`` that must inflate to exactly ``size`` bytes, in bounded memory.

    The one inflate of the format: never more than ``size + 1`` bytes are produced, so a zlib
    bomb costs nothing.

    Raises:
        PayloadError: not zlib, inflates to another size, truncated, or trailing bytes.
    """
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size + 1)  # max_length >= 1 (0 would mean "unbounded")
    except zlib.error as e:
        raise PayloadError(f"{what}: bad zlib stream: {e}") from None
    if len(out) > size:
        raise PayloadError(f"{what} inflates to more than the {size} bytes expected")
    if not d.eof and len(out) == size:
        raise PayloadError(f"{what}: zlib stream does not end after the {size} bytes expected")
    if not d.eof:
        raise PayloadError(f"{what}: truncated zlib stream ({len(out)} of {size} bytes)")
    if len(out) != size:
        raise PayloadError(f"{what} holds {len(out)} bytes, {size} expected")
    if d.unused_data:
        raise PayloadError(f"{what}: {len(d.unused_data)} bytes after the zlib stream")
    return out


def mask_position(data: bytes) -> tuple[int, int]:
    """(row, col) of a MASK payload.

    Raises:
        PayloadError: shorter than its fixed fields.
    """
    if len(data) < _RC.size:
        raise PayloadError(f"mask payload of {len(data)} bytes is truncated")
    row, col, _ = _RC.unpack_from(data, 0)
    return int(row), int(col)


def unpack_mask(
    data: bytes, shape: tuple[int, int], dtype: np.dtype[Any]
) -> tuple[int, int, NDArray[np.bool_], NDArray[Any]]:
    """Inverse of :func:`pack_mask` for a tile of ``shape`` and the input ``dtype``.

    Memory is bounded by the tile's size, whatever the payload claims.

    Raises:
        PayloadError: any inconsistency (lengths, sizes, zlib streams).
    """
    row, col = mask_position(data)
    (n,) = _U32.unpack_from(data, 8)
    if 12 + n > len(data):
        raise PayloadError(f"mask length {n} runs past the payload")
    count = shape[0] * shape[1]
    bits = inflate(data[12 : 12 + n], (count + 7) // 8, f"mask of tile ({row}, {col})")
    valid = np.unpackbits(np.frombuffer(bits, np.uint8), count=count).astype(bool)
    invalid = int(count - valid.sum())
    raw = inflate(data[12 + n :], invalid * dtype.itemsize,
                  f"invalid values of tile ({row}, {col})")  # fmt: skip
    return row, col, valid.reshape(shape), np.frombuffer(raw, dtype=dtype)


def core_shape(grid: TileGrid, row: int, col: int) -> tuple[int, int]:
    """(h, w) of a tile's core inside the scene: the shape of its MASK."""
    core = grid.core(row, col)
    return min(core.h, grid.height - core.y), min(core.w, grid.width - core.x)


def index_masks(
    reader: ContainerReader, entries: list[ChunkEntry], grid: TileGrid, dtype: np.dtype[Any],
    path: str,
) -> dict[tuple[int, int], ChunkEntry]:  # fmt: skip
    """Check every MASK (position, sizes, zlib streams) before decoding; index them by tile.

    A crafted scene size or tiling shows here: the masks were made for other tile shapes.

    Raises:
        CorruptStreamError: a mask that does not parse or does not fit its tile, or masks that
            do not cover every tile exactly once.
    """
    rows, cols = grid.shape
    masks: dict[tuple[int, int], ChunkEntry] = {}
    for e in entries:
        data = reader.read_chunk(e)
        try:
            r, c = mask_position(data)
            if not (0 <= r < rows and 0 <= c < cols) or (r, c) in masks:
                raise PayloadError(f"MASK of tile ({r}, {c}) is outside the grid or repeated")
            unpack_mask(data, core_shape(grid, r, c), dtype)
        except PayloadError as err:
            raise CorruptStreamError(path, e.offset, str(err)) from None
        masks[(r, c)] = e
    if len(masks) != rows * cols:
        raise CorruptStreamError(path, 0, "MASK chunks do not cover every tile once")
    return masks


def check_stat(reader: ContainerReader, entry: ChunkEntry, grid: TileGrid, path: str) -> None:
    """The STAT chunk: small strict JSON whose scene size is the header's.

    Raises:
        CorruptStreamError: too long, not JSON, or another scene size.
    """
    if entry.length > MAX_STAT_BYTES:
        raise CorruptStreamError(path, entry.offset, f"STAT of {entry.length} bytes is too long")
    try:
        stat = json.loads(reader.read_chunk(entry).decode("utf-8"),
                          parse_constant=_no_constant)  # fmt: skip
    except (ValueError, RecursionError) as e:
        raise CorruptStreamError(path, entry.offset, f"STAT is not strict JSON: {e}") from None
    size = (stat.get("height"), stat.get("width")) if isinstance(stat, dict) else None
    if size != (grid.height, grid.width):
        raise CorruptStreamError(
            path, entry.offset, f"STAT says {size}, the header {grid.height}x{grid.width}"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def check_layout(reader: ContainerReader, grid: TileGrid, path: str) -> dict[str, list[Any]]:
    """Every TILE and MASK present exactly once in row-major order, one STAT: else corrupt.

    EXCP chunks (at most one per tile; placed and parsed by
    :func:`autoenc.codec.exceptions.index_exceptions`) only from format version 2 on.
    """
    entries = reader.validate()
    kinds: dict[str, list[Any]] = {"TILE": [], "MASK": [], "STAT": []}
    if reader.version >= 2:
        kinds["EXCP"] = []
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
    if len(kinds.setdefault("EXCP", [])) > rows * cols:
        raise CorruptStreamError(path, 0, f"{len(kinds['EXCP'])} EXCP chunks for {n_mask} tiles")
    return kinds
