# Copyright (c) autoenc developers.
# Licensed under the MIT License.

r"""The ``.aec`` container: a versioned JSON header followed by CRC-checked chunks.

Integers are little-endian. Every length is checked against the file size before it is
used, so a damaged file raises :class:`CorruptStreamError` instead of hanging or allocating;
the closing ``END `` record makes truncation and trailing bytes always detectable.

| Offset     | Size | Field                                                              |
|------------|------|--------------------------------------------------------------------|
| 0          | 8    | magic `89 41 45 43 0D 0A 1A 0A` (`\x89AEC\r\n\x1a\n`)              |
| 8          | 2    | format version, uint16 (`FORMAT_VERSION` = 3; 1 and 2 still read)  |
| 10         | 4    | header length N, uint32, at most `MAX_HEADER_BYTES` (16 MiB)       |
| 14         | N    | header: UTF-8 JSON object, sorted keys, compact, finite numbers;   |
|            |      | from version 3 raw DEFLATE of it (inflated at most 16 MiB)         |
| 14+N       | 4    | CRC32 (`zlib.crc32`) of the N header bytes, uint32                 |
| p = 18+N   | 4    | chunk type: 4 printable ASCII bytes, e.g. `TILE`, `MASK`           |
| p+4        | 8    | payload length L, uint64, at most the bytes left in the file       |
| p+12       | L    | payload                                                            |
| p+12+L     | 4    | CRC32 of type + length field + payload, uint32                     |
| ...        |      | more chunks, each starting at p+16+L of the previous one           |
| q          | 4    | `END ` (the last chunk; same layout, L = 12)                       |
| q+4        | 8    | 12, uint64                                                         |
| q+12       | 4    | number of chunks before `END `, uint32                             |
| q+16       | 8    | total file size in bytes, uint64                                   |
| q+24       | 4    | CRC32 of bytes q .. q+23, uint32; the file ends at q+28            |

The magic's CR LF, Ctrl-Z and LF bytes (as in PNG) expose text-mode transfers. Version 2
(the exception layer: an ``exceptions`` header field and EXCP chunks) and version 3 (the
header deflated, the per-scene offset; fields in :mod:`autoenc.codec.header`) keep this
layout; the reader accepts versions 1 to 3. :func:`encode_header` / :func:`decode_header` are
the header bytes' two directions.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

from autoenc.atomic import commit, make_temp

MAGIC = b"\x89AEC\r\n\x1a\n"
FORMAT_VERSION = 3
MAX_HEADER_BYTES = 16 * 1024 * 1024
END_KIND = b"END "
_PREAMBLE = struct.Struct("<8sHI")  # magic, version, header length
_CRC = struct.Struct("<I")
_CHUNK_HEAD = struct.Struct("<4sQ")  # type, payload length
_END = struct.Struct("<IQ")  # chunk count, file size
_CHUNK_OVERHEAD = _CHUNK_HEAD.size + _CRC.size
_BLOCK = 1 << 20
_MAX_CHUNKS = 0xFFFFFFFF

PathLike = str | os.PathLike[str]


class CorruptStreamError(ValueError):
    """A container is damaged; the message names the file, the problem and the byte offset."""

    def __init__(self, path: PathLike, offset: int, reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason} (at byte {offset})")
        self.path = os.fspath(path)
        self.offset = offset
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the three fields, so copies and worker processes keep the subclass.
        return type(self), (self.path, self.offset, self.reason)


class UnsupportedVersionError(CorruptStreamError):
    """The container was written with a newer format version than this autoenc reads."""


class ChunkEntry(NamedTuple):
    """Index entry: chunk type, offset of its type field in the file, payload length."""

    kind: bytes
    offset: int
    length: int


def _valid_kind(kind: bytes) -> bool:
    return len(kind) == 4 and all(0x20 <= b <= 0x7E for b in kind)


def _no_nan(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _finite_float(text: str) -> float:
    # JSON parses 1e999 to inf without calling parse_constant: refuse it here.
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text[:40]} overflows to {v}")
    return v


def encode_header(header: dict[str, Any], version: int = FORMAT_VERSION) -> bytes:
    """The stored header bytes of a format-``version`` file: sorted compact JSON, deflated (v3).

    Raises:
        ValueError: not strict JSON (NaN, Infinity, circular references), or its JSON is over
            :data:`MAX_HEADER_BYTES`, which the reader refuses.
    """
    # ValueError: NaN/Infinity or circular references; ASCII-only output is UTF-8
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False)
    raw = text.encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"header JSON is {len(raw)} bytes, over {MAX_HEADER_BYTES}")
    if version < 3:
        return raw
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(raw) + z.flush()


def decode_header(stored: bytes, version: int) -> bytes:
    """The JSON bytes of stored header bytes (inverse of :func:`encode_header`).

    Raises:
        ValueError: a version-3 header that is not one complete DEFLATE stream, or inflates
            past :data:`MAX_HEADER_BYTES` (never more than that is inflated).
    """
    if version < 3:
        return stored
    z = zlib.decompressobj(-15)
    try:
        raw = z.decompress(stored, MAX_HEADER_BYTES + 1)
    except zlib.error as e:
        raise ValueError(f"header does not inflate: {e}") from None
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"header inflates past the {MAX_HEADER_BYTES}-byte limit")
    if not z.eof or z.unused_data or z.unconsumed_tail:
        raise ValueError("header is not one complete DEFLATE stream")
    return raw


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are ambiguous: other JSON parsers may keep the first one, not the last.
    dup = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    if dup:
        raise ValueError(f"duplicate keys {dup}")
    return dict(pairs)


class ContainerWriter:
    """Stream chunks to a temp file beside ``path``, so only a complete file ever appears there.

    Use it as a context manager: a clean exit appends ``END ``, fsyncs and renames the temp
    file onto ``path``; an exception deletes the temp file and leaves ``path`` untouched.
    Chunks go straight to disk, so memory stays bounded by the largest single payload.
    ``overwrite=False`` never replaces an existing ``path`` (:func:`autoenc.atomic.commit`).
    """

    def __init__(self, path: PathLike, header: dict[str, Any], overwrite: bool = True) -> None:
        self._path = Path(path)
        self._overwrite = overwrite
        if not isinstance(header, dict):
            raise TypeError(f"container header for {self._path} must be a dict, got {header!r}")
        try:
            self._header = encode_header(header)
        except ValueError as e:
            raise ValueError(f"container header for {self._path} is not strict JSON: {e}") from e
        if (size := len(self._header)) > MAX_HEADER_BYTES:
            raise ValueError(f"container header for {self._path} is {size} bytes, too long")
        self._file: IO[bytes] | None = None
        self._tmp: Path | None = None
        self._count = 0
        self._written = 0

    @property
    def bytes_written(self) -> int:
        """Bytes written so far, preamble included; the final file size after a clean exit."""
        return self._written

    def __enter__(self) -> ContainerWriter:
        if self._tmp is not None or self._written:
            raise RuntimeError(f"ContainerWriter for {self._path} can only be entered once")
        self._tmp = make_temp(self._path)
        try:
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in __exit__/_abort
        except BaseException:
            self._abort()
            raise
        try:
            self._write(_PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(self._header)))
            self._write(self._header + _CRC.pack(zlib.crc32(self._header)))
        except BaseException:
            self._abort()
            raise
        return self

    def add_chunk(self, kind: bytes, payload: bytes) -> None:
        """Append one chunk; ``kind`` is 4 printable ASCII bytes other than ``b"END "``."""
        if self._file is None:
            raise RuntimeError(f"ContainerWriter for {self._path} is not open; use it in a with")
        if not isinstance(kind, bytes) or not _valid_kind(kind) or kind == END_KIND:
            raise ValueError(f"chunk type must be 4 printable ASCII bytes, not END, got {kind!r}")
        if self._count >= _MAX_CHUNKS:
            raise ValueError(f"container {self._path} already holds {self._count} chunks (max)")
        view = memoryview(payload)
        head = _CHUNK_HEAD.pack(kind, view.nbytes)
        crc = zlib.crc32(view, zlib.crc32(head))
        self._write(head)
        self._write(view)
        self._write(_CRC.pack(crc))
        self._count += 1

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None or self._file is None or self._tmp is None:
            self._abort()
            return
        try:
            end = _END.pack(self._count, self._written + _CHUNK_OVERHEAD + _END.size)
            head = _CHUNK_HEAD.pack(END_KIND, len(end))
            self._write(head + end + _CRC.pack(zlib.crc32(end, zlib.crc32(head))))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            commit(self._tmp, self._path, self._overwrite)
        except BaseException:
            self._abort()
            raise
        self._tmp = None

    def _write(self, data: bytes | memoryview) -> None:
        assert self._file is not None  # internal invariant: callers checked
        self._file.write(data)
        self._written += memoryview(data).nbytes

    def _abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # the original error matters more
                self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class ContainerReader:
    """Open a container and check its preamble; chunks are checked as they are read.

    Every length field is compared with the bytes left in the file before it is used, so a
    damaged file raises :class:`CorruptStreamError` without hanging or allocating.
    """

    def __init__(self, path: PathLike) -> None:
        self._path = Path(path)
        self._file = open(self._path, "rb")
        try:
            self._size = os.fstat(self._file.fileno()).st_size
            self._version = 0
            self._header, self._data_start = self._read_preamble()
        except BaseException:
            self._file.close()
            raise

    @property
    def header(self) -> dict[str, Any]:
        """The decoded JSON header."""
        return self._header

    @property
    def version(self) -> int:
        """The file's format version (1 .. ``FORMAT_VERSION``)."""
        return self._version

    def validate(self) -> list[ChunkEntry]:
        """Check every chunk and the ``END`` record, streaming payloads; return the index."""
        return [entry for entry, _ in self._walk(lambda kind: False)]

    def chunks(self, kind: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(kind, payload)`` lazily, optionally of one type, checking each CRC.

        Damage after the last yielded chunk (including a bad ``END``) raises when reached.
        """
        if kind is not None and not _valid_kind(kind):
            raise ValueError(f"chunk type must be 4 printable ASCII bytes, got {kind!r}")
        for entry, payload in self._walk(lambda k: kind is None or k == kind):
            if payload is not None:
                yield entry.kind, payload

    def read_chunk(self, entry: ChunkEntry) -> bytes:
        """Read one chunk's payload by its :meth:`validate` entry, rechecking type and CRC."""
        if not self._data_start <= entry.offset < self._size:
            raise ValueError(f"{self._path}: chunk offset {entry.offset} is outside the chunks")
        kind, length, payload = self._read_chunk_at(entry.offset, "chunk", load=True)
        if (kind, length) != (entry.kind, entry.length):
            raise self._fail(entry.offset, f"chunk is {kind!r}/{length}, index says {entry}")
        assert payload is not None  # load=True always returns the payload
        return payload

    def close(self) -> None:
        """Close the underlying file."""
        self._file.close()

    def __enter__(self) -> ContainerReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _fail(self, offset: int, reason: str) -> CorruptStreamError:
        return CorruptStreamError(self._path, offset, reason)

    def _read_at(self, offset: int, n: int, what: str) -> bytes:
        left = max(self._size - offset, 0)
        if n > left:
            raise self._fail(offset, f"truncated {what}: needs {n} bytes, {left} left in file")
        self._file.seek(offset)
        data = self._file.read(n)
        if len(data) != n:
            raise self._fail(offset, f"truncated {what}: file shrank while reading")
        return data

    def _read_preamble(self) -> tuple[dict[str, Any], int]:
        self._file.seek(0)
        start = self._file.read(len(MAGIC))
        if start != MAGIC:
            if MAGIC.startswith(start):
                raise self._fail(0, f"truncated magic: file has only {self._size} bytes")
            raise self._fail(0, f"bad magic {start!r}: not an .aec file, or a text-mode copy")
        _, version, n = _PREAMBLE.unpack(self._read_at(0, _PREAMBLE.size, "preamble"))
        if version > FORMAT_VERSION:
            msg = f"format version {version} is newer than this autoenc reads ({FORMAT_VERSION})"
            raise UnsupportedVersionError(self._path, 8, msg)
        if version < 1:
            raise self._fail(8, f"invalid format version {version}")
        self._version = int(version)
        if n > MAX_HEADER_BYTES:
            raise self._fail(10, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
        raw = self._read_at(_PREAMBLE.size, n, "header")
        crc_at = _PREAMBLE.size + n
        (stored,) = _CRC.unpack(self._read_at(crc_at, _CRC.size, "header CRC"))
        if stored != (crc := zlib.crc32(raw)):
            raise self._fail(crc_at, f"header CRC mismatch: stored {stored:#x}, data {crc:#x}")
        try:
            raw = decode_header(raw, self._version)
        except ValueError as e:
            raise self._fail(_PREAMBLE.size, str(e)) from None
        try:
            text = raw.decode("utf-8")
            header = json.loads(
                text,
                parse_constant=_no_nan,
                parse_float=_finite_float,
                object_pairs_hook=_unique_keys,
            )
        except (ValueError, RecursionError) as e:
            raise self._fail(_PREAMBLE.size, f"header is not strict JSON: {e}") from e
        if not isinstance(header, dict):
            kind = type(header).__name__
            raise self._fail(_PREAMBLE.size, f"header must be a JSON object, got {kind}")
        return header, crc_at + _CRC.size

    def _read_chunk_at(self, pos: int, name: str, load: bool) -> tuple[bytes, int, bytes | None]:
        """Read and CRC-check the chunk at ``pos``; stream the payload unless ``load``."""
        head = self._read_at(pos, _CHUNK_HEAD.size, f"{name} header")
        kind, length = _CHUNK_HEAD.unpack(head)
        if not _valid_kind(kind):
            raise self._fail(pos, f"{name} has invalid type {kind!r}")
        left = max(self._size - pos - _CHUNK_OVERHEAD, 0)
        if length > left:
            raise self._fail(pos + 4, f"{name} {kind!r} length {length} exceeds the {left} left")
        start = pos + _CHUNK_HEAD.size
        crc = zlib.crc32(head)
        payload = None
        if load:
            payload = self._read_at(start, length, f"{name} payload")
            crc = zlib.crc32(payload, crc)
        else:
            for off in range(start, start + length, _BLOCK):
                n = min(_BLOCK, start + length - off)
                crc = zlib.crc32(self._read_at(off, n, f"{name} payload"), crc)
        (stored,) = _CRC.unpack(self._read_at(start + length, _CRC.size, f"{name} CRC"))
        if stored != crc:
            msg = f"{name} {kind!r} CRC mismatch: stored {stored:#x}, data {crc:#x}"
            raise self._fail(start + length, msg)
        return kind, length, payload

    def _walk(self, load: Callable[[bytes], bool]) -> Iterator[tuple[ChunkEntry, bytes | None]]:
        pos, count = self._data_start, 0
        while True:
            name = f"chunk #{count}"
            kind, length = _CHUNK_HEAD.unpack(
                self._read_at(pos, _CHUNK_HEAD.size, f"{name} header (no END record)")
            )
            if kind == END_KIND and length != _END.size:  # checked before loading it
                raise self._fail(pos + 4, f"END record has {length} bytes, expected {_END.size}")
            kind, length, payload = self._read_chunk_at(pos, name, kind == END_KIND or load(kind))
            end = pos + _CHUNK_OVERHEAD + length
            if kind != END_KIND:
                yield ChunkEntry(kind, pos, length), payload
                pos, count = end, count + 1
                continue
            assert payload is not None  # END is always loaded
            if end != self._size:
                raise self._fail(end, f"{self._size - end} unexpected bytes after the END record")
            n_chunks, total = _END.unpack(payload)
            if n_chunks != count:
                raise self._fail(pos + 12, f"END record counts {n_chunks} chunks, found {count}")
            if total != self._size:
                raise self._fail(pos + 16, f"END record says {total} bytes, file has {self._size}")
            return


def read_header(path: PathLike) -> dict[str, Any]:
    """Read only the preamble and header of a container; chunks are not checked."""
    with ContainerReader(path) as reader:
        return reader.header
