# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The .aec container: round trips, atomic writes and corruption detection."""

from __future__ import annotations

import copy
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoenc.codec.container import (
    FORMAT_VERSION,
    MAGIC,
    MAX_HEADER_BYTES,
    ChunkEntry,
    ContainerReader,
    ContainerWriter,
    CorruptStreamError,
    UnsupportedVersionError,
    encode_header,
    read_header,
)

HEADER: dict[str, Any] = {
    "model": "ScaleHyperprior",
    "shape": [3, 1000, 1200],
    "scale": {"vmin_db": -25.0, "vmax_db": 5.0},
    "name": "S1A_IW_GRDH_ü",
}


def _write(path: Path, chunks: list[tuple[bytes, bytes]], header: dict[str, Any] = HEADER) -> int:
    with ContainerWriter(path, header) as w:
        for kind, payload in chunks:
            w.add_chunk(kind, payload)
    return w.bytes_written


def _validate(path: Path) -> list[ChunkEntry]:
    with ContainerReader(path) as r:
        return r.validate()


def _crc(data: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(data))


def _raw_file(header: bytes, version: int = FORMAT_VERSION) -> bytes:
    """A container with a hand-made JSON header and no chunks, CRCs and END correct.

    The header is stored as the format stores it: deflated from version 3 on.
    """
    if version >= 3:
        header = zlib.compress(header, 9, wbits=-15)
    return _stored_file(header, version)


def _stored_file(stored: bytes, version: int) -> bytes:
    """A container whose header field holds exactly ``stored``, CRCs and END correct."""
    pre = MAGIC + struct.pack("<HI", version, len(stored)) + stored + _crc(stored)
    head = b"END " + struct.pack("<Q", 12)
    end = struct.pack("<IQ", 0, len(pre) + 28)
    return pre + head + end + _crc(head + end)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A valid container of a few KB: header and five chunks, one of them empty."""
    rng = np.random.default_rng(0)
    sizes = [700, 0, 1500, 64, 900]
    kinds = [b"TILE", b"MASK", b"TILE", b"GEO ", b"TILE"]
    path = tmp_path / "small.aec"
    _write(path, [(k, rng.bytes(n)) for k, n in zip(kinds, sizes, strict=True)])
    return path


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    chunks = [
        (b"TILE", rng.bytes((1 << 20) + 5)),  # spans two of the reader's 1 MiB blocks
        (b"MASK", b""),
        (b"TILE", rng.bytes(37)),
        (b"META", b""),
        (b"TILE", np.arange(6, dtype=np.float32).tobytes()),
    ]
    path = tmp_path / "out" / "scene.aec"
    written = _write(path, chunks)
    assert written == path.stat().st_size
    assert read_header(path) == HEADER
    with ContainerReader(path) as r:
        assert r.header == HEADER
        entries = r.validate()
        assert [(e.kind, e.length) for e in entries] == [(k, len(p)) for k, p in chunks]
        header_len = len(encode_header(HEADER))
        assert entries[0].offset == 18 + header_len
        for a, b in zip(entries, entries[1:], strict=False):
            assert b.offset == a.offset + 16 + a.length
        assert list(r.chunks()) == chunks
        assert list(r.chunks(b"TILE")) == [c for c in chunks if c[0] == b"TILE"]
        assert [r.read_chunk(e) for e in entries] == [p for _, p in chunks]
    assert sorted(p.name for p in path.parent.iterdir()) == ["scene.aec"]


def test_header_bytes_are_compact_sorted_json(tmp_path: Path) -> None:
    path = tmp_path / "h.aec"
    _write(path, [], header={"b": 1, "a": [1.5, None]})
    data = path.read_bytes()
    assert data[:8] == MAGIC and struct.unpack("<H", data[8:10]) == (FORMAT_VERSION,)
    (n,) = struct.unpack("<I", data[10:14])
    assert zlib.decompress(data[14 : 14 + n], -15) == b'{"a":[1.5,null],"b":1}'  # raw DEFLATE
    assert len(data) == 14 + n + 4 + 28 and _validate(path) == []
    assert encode_header({"b": 1, "a": [1.5, None]}, version=2) == b'{"a":[1.5,null],"b":1}'


def test_version_2_header_is_plain_json_and_still_read(tmp_path: Path) -> None:
    path = tmp_path / "v2.aec"
    path.write_bytes(_raw_file(b'{"a":1}', version=2))
    assert read_header(path) == {"a": 1} and _validate(path) == []


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        (b'{"a":1}', "inflate|DEFLATE"),  # plain JSON in a version 3 file
        (zlib.compress(b'{"a":1}'), "inflate|DEFLATE"),  # zlib wrapper, not raw DEFLATE
        (zlib.compress(b'{"a":1}', wbits=-15) + b"x", "one complete DEFLATE stream"),
        (zlib.compress(b'{"a":1}', wbits=-15)[:-2], "one complete DEFLATE stream"),
    ],
)
def test_bad_deflated_header_is_corrupt(tmp_path: Path, stored: bytes, match: str) -> None:
    path = tmp_path / "z.aec"
    path.write_bytes(_stored_file(stored, 3))
    with pytest.raises(CorruptStreamError, match=match):
        read_header(path)


def test_header_bomb_inflates_no_more_than_the_limit(tmp_path: Path) -> None:
    bomb = zlib.compress(b" " * (MAX_HEADER_BYTES + 10), 9, wbits=-15)  # ~16 KB stored
    path = tmp_path / "bomb.aec"
    path.write_bytes(_stored_file(bomb, 3))
    with pytest.raises(CorruptStreamError, match="inflates past"):
        read_header(path)


def test_failure_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "x.aec"
    with pytest.raises(RuntimeError, match="boom"):
        with ContainerWriter(path, HEADER) as w:
            w.add_chunk(b"TILE", b"abc" * 1000)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_existing_file(small: Path) -> None:
    before = small.read_bytes()
    with pytest.raises(ValueError, match="b'bad!!'"):
        with ContainerWriter(small, HEADER) as w:
            w.add_chunk(b"TILE", b"new data")
            w.add_chunk(b"bad!!", b"")
    assert small.read_bytes() == before
    assert [p.name for p in small.parent.iterdir()] == [small.name]


@pytest.mark.parametrize("kind", [b"END ", b"TIL", b"TILES", b"TI\x00E", "TILE"])
def test_bad_chunk_type_rejected(tmp_path: Path, kind: Any) -> None:
    with pytest.raises(ValueError, match="chunk type"):
        with ContainerWriter(tmp_path / "k.aec", {}) as w:
            w.add_chunk(kind, b"")
    assert list(tmp_path.iterdir()) == []


def test_writer_must_be_entered(tmp_path: Path) -> None:
    w = ContainerWriter(tmp_path / "w.aec", {})
    with pytest.raises(RuntimeError, match="not open"):
        w.add_chunk(b"TILE", b"")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_header_rejects_non_finite_on_write(tmp_path: Path, bad: float) -> None:
    with pytest.raises(ValueError, match="not strict JSON"):
        ContainerWriter(tmp_path / "n.aec", {"scale": [1.0, bad]})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b'{"a":NaN}', "NaN"),
        (b'{"a":-Infinity}', "Infinity"),
        (b'{"a":1,"a":2}', "duplicate keys"),
        (b"[1,2]", "JSON object"),
        (b'{"a":"\xff"}', "not strict JSON"),
        (b"[" * 100_000, "not strict JSON"),
    ],
)
def test_header_rejected_on_read(tmp_path: Path, header: bytes, match: str) -> None:
    path = tmp_path / "r.aec"
    path.write_bytes(_raw_file(header))
    with pytest.raises(CorruptStreamError, match=match):
        ContainerReader(path)


def test_hand_made_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "ok.aec"
    path.write_bytes(_raw_file(b'{"a":1}'))
    assert read_header(path) == {"a": 1} and _validate(path) == []


def test_future_version(tmp_path: Path) -> None:
    path = tmp_path / "v.aec"
    path.write_bytes(_raw_file(b"{}", version=FORMAT_VERSION + 1))
    with pytest.raises(UnsupportedVersionError, match=f"reads \\({FORMAT_VERSION}\\)") as info:
        read_header(path)
    assert isinstance(info.value, CorruptStreamError)
    assert f"format version {FORMAT_VERSION + 1}" in str(info.value)
    path.write_bytes(_raw_file(b"{}", version=0))
    with pytest.raises(CorruptStreamError, match="invalid format version 0"):
        read_header(path)


def test_text_mode_copy_detected(small: Path) -> None:
    small.write_bytes(small.read_bytes().replace(b"\r\n", b"\n"))
    with pytest.raises(CorruptStreamError, match="bad magic"):
        read_header(small)


def test_error_names_file_and_offset(small: Path) -> None:
    data = bytearray(small.read_bytes())
    data[-30] ^= 0x01  # inside the last payload
    small.write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError) as info:
        _validate(small)
    err = info.value
    assert str(small) in str(err) and "CRC mismatch" in str(err) and "at byte" in str(err)
    assert err.path == str(small) and 0 < err.offset < len(data)
    clone = copy.copy(err)
    assert type(clone) is CorruptStreamError and str(clone) == str(err)


def test_junk_after_end(small: Path) -> None:
    with small.open("ab") as f:
        f.write(b"\x00")
    assert read_header(small) == HEADER  # the header alone is still fine
    with pytest.raises(CorruptStreamError, match="1 unexpected bytes after the END"):
        _validate(small)
    with ContainerReader(small) as r, pytest.raises(CorruptStreamError):
        for _ in r.chunks():
            pass


def test_missing_end(small: Path) -> None:
    size = small.stat().st_size
    with small.open("r+b") as f:
        f.truncate(size - 28)
    with pytest.raises(CorruptStreamError, match="no END record"):
        _validate(small)


def test_huge_lengths_fail_fast(tmp_path: Path) -> None:
    path = tmp_path / "huge.aec"
    _write(path, [(b"TILE", b"xyz")])
    data = bytearray(path.read_bytes())
    start = _validate(path)[0].offset
    data[start + 4 : start + 12] = struct.pack("<Q", 2**63)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError, match="exceeds"):
        _validate(path)
    data[10:14] = struct.pack("<I", 2**32 - 1)
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError, match="header length"):
        ContainerReader(path)


def test_fuzz_every_damage_detected(small: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2024)
    data = small.read_bytes()
    size = len(data)
    mutants: list[bytes] = []
    for _ in range(1000):
        pos = int(rng.integers(size))
        damaged = bytearray(data)
        damaged[pos] ^= int(rng.integers(1, 256))  # a nonzero xor always changes the byte
        mutants.append(bytes(damaged))
    mutants += [data[: int(n)] for n in rng.integers(0, size, 100)]
    mutants.append(data + data[-28:])  # a second END record
    path = tmp_path / "fuzz.aec"
    start = time.perf_counter()
    for i, mutant in enumerate(mutants):
        assert mutant != data
        path.write_bytes(mutant)
        try:
            _validate(path)
        except CorruptStreamError:
            continue
        pytest.fail(f"mutant #{i} was accepted")
    elapsed = time.perf_counter() - start
    assert elapsed < 60, f"fuzz took {elapsed:.1f} s"
