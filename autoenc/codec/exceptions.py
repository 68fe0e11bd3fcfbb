# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The exception layer: valid pixels outside the model's dB window, coded beside the stream.

The network sees the scene clipped to its window (``vmin_db .. vmax_db``); every valid pixel
whose dB value (in the model's dB: after calibration and the per-scene offset, with no noise
floor, saturated at ``±LIMITS.db``) lies outside that window is coded here instead, so nothing
outside the window is lost. Per tile with such pixels, one ``EXCP`` chunk:

``u32 row, u32 col, u32 n``, then zlib of ``8 n`` bytes: the 4 byte planes (low byte first)
of ``n`` uint32 position gaps, then those of ``n`` uint32 zigzag value codes.

* positions are linear row-major indexes into the tile's core inside the scene (the MASK's
  shape), strictly increasing; gap ``i`` is ``p[i] - p[i-1]`` with ``p[-1] = -1``, so every
  gap is at least 1 (0 would be a repeated position);
* from format version 3, values are coded from the nearer window edge, where most exceptions
  lie (dark speckle just under the window, targets just over it), so their codes are small:
  ``code = -(1 + rint((vmin_db - dB) / step_db))`` below the window, ``rint((dB - vmax_db) /
  step_db)`` above it, decoded as ``vmin_db - (-code - 1) * step_db`` or ``vmax_db + code *
  step_db``; in version 2 files ``code = rint(dB / step_db)`` (:func:`value_codes` and
  :func:`code_values`, the two directions). dB is saturated at ``±LIMITS.db``, and a value
  decodes within ``step_db / 2`` of its input dB.

Decoding replaces the network's reconstruction at those positions before the one inverse
mapping to the input's units and dtype (:func:`autoenc.codec.dtypes.from_db`).

Invariants:
    * :func:`unpack_exceptions` never allocates more than the tile's size, whatever the payload
      claims, and raises :class:`PayloadError` for anything the writer would not write (a count
      of 0 or above the tile's valid pixels, a repeated or out-of-tile position, a position on
      an invalid pixel, a code beyond ``±LIMITS.db``, a zlib stream of another size).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.codec.container import ChunkEntry, ContainerReader, CorruptStreamError
from autoenc.codec.header import LIMITS, ExceptionCoding
from autoenc.codec.payload import PayloadError, core_shape, inflate, unpack_mask
from autoenc.tiling import TileGrid

_RCN = struct.Struct("<III")
#: Bytes of one chunk besides its payload (type, length, CRC), counted in the exception cost.
CHUNK_OVERHEAD = 16


def value_codes(db: NDArray[Any], coding: ExceptionCoding) -> NDArray[np.int64]:
    """Integer codes of exception values (dB outside the window) under ``coding``."""
    assert coding.step_db is not None  # callers keep exceptions
    step = coding.step_db
    d = np.clip(np.asarray(db, np.float64), -LIMITS.db, LIMITS.db)
    if coding.edges is None:  # version 2: absolute
        return np.rint(d / step).astype(np.int64)
    lo, hi = coding.edges
    below = -1 - np.rint(np.maximum(lo - d, 0.0) / step)
    above = np.rint(np.maximum(d - hi, 0.0) / step)
    # The side is decided by the window's middle, not by an edge: a value that
    # find_exceptions (float32) put just below an edge that float32 rounds up must not code as
    # "above" (it would decode at the other edge).
    return np.where(d < (lo + hi) / 2, below, above).astype(np.int64)


def code_values(codes: NDArray[np.int64], coding: ExceptionCoding) -> NDArray[np.float64]:
    """DB values of exception codes under ``coding`` (inverse of :func:`value_codes`)."""
    assert coding.step_db is not None
    step = coding.step_db
    if coding.edges is None:
        return codes.astype(np.float64) * step
    lo, hi = coding.edges
    return np.where(codes < 0, lo - (-codes - 1) * step, hi + codes * step).astype(np.float64)


def find_exceptions(
    db: NDArray[np.float32], valid: NDArray[np.bool_], window: tuple[float, float]
) -> NDArray[np.int64]:
    """Linear indexes of the valid pixels of a core tile ``(h, w)`` outside ``window``."""
    lo, hi = window
    return np.flatnonzero(valid & ((db < np.float32(lo)) | (db > np.float32(hi))))


def pack_exceptions(
    row: int, col: int, positions: NDArray[np.int64], db: NDArray[Any], coding: ExceptionCoding
) -> bytes:
    """EXCP payload of one tile: increasing ``positions`` and their ``db`` values."""
    n = len(positions)
    gaps = np.diff(np.asarray(positions, np.int64), prepend=-1).astype("<u4")
    codes = value_codes(db, coding)
    zigzag = ((codes << 1) ^ (codes >> 63)).astype("<u4")
    planes = [a.view(np.uint8).reshape(n, 4).T.tobytes() for a in (gaps, zigzag)]
    return _RCN.pack(row, col, n) + zlib.compress(b"".join(planes), 9)


def unpack_exceptions(
    data: bytes, valid: NDArray[np.bool_], coding: ExceptionCoding
) -> tuple[int, int, NDArray[np.int64], NDArray[np.float64]]:
    """(row, col, positions, dB values) of an EXCP payload for a tile whose MASK is ``valid``.

    Raises:
        PayloadError: any inconsistency (see the module's invariants).
    """
    if len(data) < _RCN.size:
        raise PayloadError(f"EXCP payload of {len(data)} bytes is truncated")
    row, col, n = _RCN.unpack_from(data, 0)
    where = f"EXCP of tile ({row}, {col})"
    n_valid = int(valid.sum())
    if not 1 <= n <= n_valid:
        raise PayloadError(f"{where} declares {n} exceptions; the tile has {n_valid} valid px")
    raw = np.frombuffer(inflate(data[_RCN.size :], 8 * n, where), np.uint8)
    gaps, zigzag = (p.reshape(4, n).T.copy().view("<u4").ravel().astype(np.int64)
                    for p in (raw[: 4 * n], raw[4 * n :]))  # fmt: skip
    if (gaps < 1).any():
        raise PayloadError(f"{where} repeats a position (or is not in increasing order)")
    positions = np.cumsum(gaps) - 1
    if positions[-1] >= valid.size:
        raise PayloadError(f"{where}: position {positions[-1]} is outside the {valid.size} px tile")
    if not valid.ravel()[positions].all():
        raise PayloadError(f"{where} holds an exception at an invalid pixel")
    codes = (zigzag >> 1) ^ -(zigzag & 1)
    values = code_values(codes, coding)
    assert coding.step_db is not None  # code_values checked it
    if (np.abs(values) > LIMITS.db + coding.step_db).any():
        raise PayloadError(f"{where} holds a value beyond ±{LIMITS.db} dB")
    return int(row), int(col), positions, values


def index_exceptions(
    reader: ContainerReader, entries: list[ChunkEntry], grid: TileGrid,
    masks: dict[tuple[int, int], ChunkEntry], dtype: np.dtype[Any], coding: ExceptionCoding,
    path: str,
) -> dict[tuple[int, int], ChunkEntry]:  # fmt: skip
    """Check every EXCP against its tile's MASK before decoding; index them by tile.

    Raises:
        CorruptStreamError: EXCP chunks in a file that clips, more than one per tile, or one
            that does not parse or fit its tile.
    """
    if entries and coding.step_db is None:
        raise CorruptStreamError(path, entries[0].offset, "EXCP chunk in a file that clips")
    rows, cols = grid.shape
    out: dict[tuple[int, int], ChunkEntry] = {}
    for e in entries:
        data = reader.read_chunk(e)
        try:
            if len(data) < _RCN.size:
                raise PayloadError(f"EXCP payload of {len(data)} bytes is truncated")
            r, c, _ = _RCN.unpack_from(data, 0)
            if not (0 <= r < rows and 0 <= c < cols) or (r, c) in out:
                raise PayloadError(f"EXCP of tile ({r}, {c}) is outside the grid or repeated")
            shape = core_shape(grid, r, c)
            _, _, valid, _ = unpack_mask(reader.read_chunk(masks[(r, c)]), shape, dtype)
            unpack_exceptions(data, valid.ravel(), coding)
        except PayloadError as err:
            raise CorruptStreamError(path, e.offset, str(err)) from None
        out[(r, c)] = e
    return out
