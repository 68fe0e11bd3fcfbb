# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Integer symbols + integer probability tables <-> bytes; the only constriction import.

Everything here is numpy in, numpy/bytes out, so the entropy models stay free of coder
details and the bitstream depends only on integer tables, never on float maths:

* ``quantize_pmf`` turns float PMFs into integer counts (``PRECISION`` bits, every bin
  at least one count, each row summing to exactly ``2**PRECISION``).
* ``TableCoder`` codes symbols, each with the table named by its index, using
  constriction's range coder. A table's last bin is an escape: symbols outside the
  table's support code the escape and then their distance from the support with an
  Exp-Golomb-like code made of uniform symbols (CompressAI's "overflow" coding).

Counts are handed to constriction as ``counts / 2**PRECISION`` in float64. Those values,
their running sums and constriction's rescaling to its 24-bit fixed point are all exact
in float64, so the same tables give the same bytes on every machine.
"""

from __future__ import annotations

from typing import Any

import constriction
import numpy as np
import numpy.typing as npt

PRECISION = 16
"""Bits of the integer tables; constriction re-quantises them (exactly) to 24 bits."""

_MAX_EXPONENT = 32
"""Largest Exp-Golomb exponent: escape distances of int32 symbols are below ``2**33``."""

_CHUNK_BITS = 16
"""Mantissa bits per uniform symbol; constriction's uniform model needs a size < 2**24."""


def quantize_pmf(
    pmf: npt.NDArray[np.floating], lengths: npt.NDArray[np.integer], precision: int = PRECISION
) -> npt.NDArray[np.int32]:
    """Round float PMFs to integer counts that sum to exactly ``2**precision`` per row.

    Every bin gets one count first, so no symbol is ever uncodable; the rest is shared in
    proportion to ``pmf`` by largest remainders, which keeps the rounding loss minimal.

    Args:
        pmf: (T, L) non-negative probabilities; row ``t`` uses its first ``lengths[t]`` bins
            and need not be normalised.
        lengths: (T,) number of bins of each row, escape bin included.
        precision: total count is ``2**precision``.

    Returns:
        (T, L) int32 counts, zero beyond each row's length.

    Raises:
        ValueError: if shapes disagree, a length is outside ``[1, min(L, 2**precision)]`` or
            the PMF holds NaN or negative values.
    """
    pmf = np.asarray(pmf, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if pmf.ndim != 2 or lengths.shape != pmf.shape[:1]:
        raise ValueError(f"expected pmf (T, L) and lengths (T,), got {pmf.shape}, {lengths.shape}")
    total = 1 << precision
    bad = np.flatnonzero((lengths < 1) | (lengths > min(pmf.shape[1], total)))
    if bad.size:
        raise ValueError(
            f"table {bad[0]} has {lengths[bad[0]]} bins; need 1..{min(pmf.shape[1], total)}"
        )
    if not np.all(np.isfinite(pmf)) or np.any(pmf < 0):
        raise ValueError("pmf must be finite and non-negative")
    mask = np.arange(pmf.shape[1]) < lengths[:, None]
    pmf = np.where(mask, pmf, 0.0)
    row_sum = pmf.sum(axis=1, keepdims=True)
    # A row without mass (all bins underflowed) becomes uniform over its bins.
    pmf = np.where(row_sum > 0, pmf, mask.astype(np.float64))
    row_sum = pmf.sum(axis=1, keepdims=True)
    scaled = pmf / row_sum * (total - lengths)[:, None]
    floor = np.floor(scaled)
    counts = np.where(mask, floor.astype(np.int64) + 1, 0)
    remainder = total - counts.sum(axis=1)  # in [0, lengths) up to float error
    if np.any(remainder < 0):
        raise ValueError(f"pmf rounding overshot by {-remainder.min()} counts")
    # Hand the remaining counts to the bins with the largest fractional parts.
    frac = np.where(mask, scaled - floor, -1.0)
    order = np.argsort(-frac, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pmf.shape[1])[None, :].repeat(len(pmf), 0), axis=1)
    counts += mask & (rank < remainder[:, None])
    return counts.astype(np.int32)


class TableCoder:
    """Range-codes int32 symbols with a set of integer tables, one table per symbol.

    Table ``t`` covers symbol values ``offsets[t] .. offsets[t] + lengths[t] - 2``; its bin
    ``lengths[t] - 1`` is the escape. Symbols are coded grouped by table (stable order), so
    each table's constriction model is built once and every group is coded in one call;
    escaped values follow at the end of the stream. The decoder receives the same indexes
    and so repeats the grouping without side information.

    The range coder (a queue: first in, first out) is used rather than ANS (a stack) so the
    escape payload can simply be appended after the symbols that announce it.
    """

    def __init__(
        self,
        pmfs: npt.NDArray[np.integer],
        lengths: npt.NDArray[np.integer],
        offsets: npt.NDArray[np.integer],
        precision: int = PRECISION,
    ) -> None:
        """Validate the tables and build one constriction model per table.

        Args:
            pmfs: (T, L) integer counts, as returned by `quantize_pmf`.
            lengths: (T,) bins per table, escape bin included (at least 2).
            offsets: (T,) symbol value of each table's bin 0.
            precision: each row must sum to ``2**precision``.

        Raises:
            ValueError: naming the first malformed table.
        """
        pmfs = np.asarray(pmfs, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if pmfs.ndim != 2 or not self.lengths.shape == self.offsets.shape == pmfs.shape[:1]:
            raise ValueError(
                f"expected pmfs (T, L), lengths (T,), offsets (T,); got {pmfs.shape}, "
                f"{self.lengths.shape}, {self.offsets.shape}"
            )
        self.num_tables = len(pmfs)
        models = []
        for t, (row, length) in enumerate(zip(pmfs, self.lengths, strict=True)):
            counts = row[: max(int(length), 0)]
            if length < 2 or length > pmfs.shape[1]:
                raise ValueError(f"table {t} has length {length}; need 2..{pmfs.shape[1]}")
            if counts.min() < 1 or counts.sum() != 1 << precision:
                raise ValueError(
                    f"table {t} needs counts >= 1 summing to {1 << precision}, "
                    f"got min {counts.min()} and sum {counts.sum()}"
                )
            probabilities = counts.astype(np.float64) / float(1 << precision)
            models.append(constriction.stream.model.Categorical(probabilities, perfect=False))
        self._models = models

    def encode(self, symbols: npt.NDArray[np.integer], indexes: npt.NDArray[np.integer]) -> bytes:
        """Code ``symbols[i]`` with table ``indexes[i]``; both are flattened.

        Raises:
            ValueError: if the arrays differ in size, hold non-integers, an index is out of
                range or a symbol does not fit int32.
        """
        values = _int32_values(symbols)
        self._grouping(indexes, values.size)  # validates the indexes
        if values.size == 0:
            return b""
        encoder = constriction.stream.queue.RangeEncoder()
        self._encode_into(encoder, values, indexes)
        words: npt.NDArray[np.uint32] = encoder.get_compressed()
        return words.astype("<u4").tobytes()

    def _encode_into(
        self, encoder: Any, values: npt.NDArray[np.int64], indexes: npt.NDArray[np.integer]
    ) -> None:
        """Append ``values`` (flat int64) and their escapes to an open range ``encoder``."""
        order, sorted_indexes, bounds = self._grouping(indexes, values.size)
        if values.size == 0:
            return
        bins = values[order] - self.offsets[sorted_indexes]
        escape_bin = self.lengths[sorted_indexes] - 1
        escaped = (bins < 0) | (bins >= escape_bin)
        coded = np.where(escaped, escape_bin, bins).astype(np.int32)
        for t in np.flatnonzero(np.diff(bounds)):
            encoder.encode(coded[bounds[t] : bounds[t + 1]], self._models[t])
        if escaped.any():
            below = bins[escaped] < 0
            distance = np.where(below, -bins[escaped] - 1, bins[escaped] - escape_bin[escaped])
            _encode_escapes(encoder, below, distance)

    def decode(self, data: bytes, indexes: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
        """Invert `encode`: decode one symbol per entry of ``indexes`` (flattened).

        Raises:
            ValueError: if an index is out of range, ``data`` is not whole 32-bit words or
                it decodes to values outside int32 (corrupt or mismatched stream).
        """
        size = int(np.asarray(indexes).size)
        self._grouping(indexes, size)  # validates the indexes before the data
        if size == 0:
            return np.empty(0, dtype=np.int32)
        return self._decode_from(_range_decoder(data), indexes)

    def _decode_from(self, decoder: Any, indexes: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
        """Decode one symbol per entry of ``indexes`` from an open range ``decoder``."""
        out = np.empty(int(np.asarray(indexes).size), dtype=np.int64)
        self._decode_scatter(decoder, indexes, out, None)
        return out.astype(np.int32)

    def _decode_scatter(
        self,
        decoder: Any,
        indexes: npt.NDArray[np.integer],
        out: npt.NDArray[Any],
        positions: npt.NDArray[np.integer] | None,
    ) -> None:
        """``out[positions[i]] = `` the symbol decoded with table ``indexes[i]``, for every ``i``.

        The same symbols as :meth:`_decode_from` (same order in the stream), written straight
        to their places: one scatter per table, no int64 copies, escapes looked for per table.
        ``positions=None``: ``out`` itself, in order.
        """
        flat = np.asarray(indexes).reshape(-1)
        size = out.size if positions is None else positions.size
        if flat.size != size:
            raise ValueError(f"got {size} symbols but {flat.size} indexes")
        if not np.issubdtype(flat.dtype, np.integer):
            raise ValueError(f"indexes must be integers, got dtype {flat.dtype}")
        if flat.size == 0:
            return
        lowest = int(flat.min())
        counts = np.bincount(flat, minlength=self.num_tables) if lowest >= 0 else flat[:0]
        if lowest < 0 or counts.size > self.num_tables:
            bad = flat[(flat < 0) | (flat >= self.num_tables)][0]
            raise ValueError(f"table index {bad} out of range for {self.num_tables} tables")
        small = flat.astype(np.uint8 if self.num_tables <= 1 << 8 else np.uint16, copy=False)
        order = np.argsort(small, kind="stable")  # a radix sort: O(n), the encoder's order
        where = order if positions is None else positions[order]
        escaped: list[tuple[int, npt.NDArray[np.intp]]] = []  # (table, place in ``where``)
        start = 0
        for t in np.flatnonzero(counts).tolist():
            n = int(counts[t])
            bins = decoder.decode(self._models[t], n)
            escape = int(self.lengths[t]) - 1
            if bins.max() == escape:
                escaped.append((t, start + np.flatnonzero(bins == escape)))
            out[where[start : start + n]] = bins + int(self.offsets[t])
            start += n
        if escaped:
            tables = np.concatenate([np.full(len(p), t) for t, p in escaped])
            places = np.concatenate([p for _, p in escaped])
            below, distance = _decode_escapes(decoder, len(places))
            offsets, escape_bin = self.offsets[tables], self.lengths[tables] - 1
            values = np.where(below, offsets - 1 - distance, offsets + escape_bin + distance)
            if values.min() < -(2**31) or values.max() >= 2**31:
                raise ValueError("stream decodes to values outside int32; corrupt or wrong tables")
            out[where[places]] = values

    def _grouping(
        self, indexes: npt.NDArray[np.integer], size: int
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Stable order that groups symbols by table, the sorted indexes and group bounds."""
        flat = np.asarray(indexes).reshape(-1)
        if flat.size != size:
            raise ValueError(f"got {size} symbols but {flat.size} indexes")
        if not np.issubdtype(flat.dtype, np.integer):
            raise ValueError(f"indexes must be integers, got dtype {flat.dtype}")
        flat = flat.astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= self.num_tables):
            bad = flat[(flat < 0) | (flat >= self.num_tables)][0]
            raise ValueError(f"table index {bad} out of range for {self.num_tables} tables")
        # a stable sort of small integers is a radix sort in numpy: O(n), same order
        small = (
            np.uint8
            if self.num_tables <= 1 << 8
            else np.uint16
            if self.num_tables <= 1 << 16
            else None
        )
        order = np.argsort(flat if small is None else flat.astype(small), kind="stable")
        sorted_indexes = flat[order]
        bounds = np.zeros(self.num_tables + 1, dtype=np.int64)
        np.cumsum(np.bincount(sorted_indexes, minlength=self.num_tables), out=bounds[1:])
        return order, sorted_indexes, bounds


class StreamEncoder:
    """Several groups of symbols, each with its own indexes, in one range-coded stream.

    A codec whose later symbols' tables depend on earlier symbols (a context model) codes
    group after group into one stream, which costs one flush instead of one per group; the
    :class:`StreamDecoder` reads the groups back in the same order.
    """

    def __init__(self, coder: TableCoder) -> None:
        """Open an empty stream coded with ``coder``'s tables."""
        self.coder = coder
        self._encoder = constriction.stream.queue.RangeEncoder()

    def encode(self, symbols: npt.NDArray[np.integer], indexes: npt.NDArray[np.integer]) -> None:
        """Append one group (as :meth:`TableCoder.encode`)."""
        values = _int32_values(symbols)
        self.coder._encode_into(self._encoder, values, indexes)

    def finish(self) -> bytes:
        """The stream's bytes (whole little-endian 32-bit words)."""
        words: npt.NDArray[np.uint32] = self._encoder.get_compressed()
        return words.astype("<u4").tobytes()


class StreamDecoder:
    """Reads back the groups of a :class:`StreamEncoder` stream, in order."""

    def __init__(self, coder: TableCoder, data: bytes) -> None:
        """Open ``data``.

        Raises:
            ValueError: ``data`` is not whole 32-bit words.
        """
        self.coder = coder
        self._decoder = _range_decoder(data)

    def decode(self, indexes: npt.NDArray[np.integer]) -> npt.NDArray[np.int32]:
        """The next group: one symbol per entry of ``indexes`` (flattened)."""
        return self.coder._decode_from(self._decoder, indexes)

    def decode_into(
        self,
        indexes: npt.NDArray[np.integer],
        out: npt.NDArray[Any],
        positions: npt.NDArray[np.integer] | None,
    ) -> None:
        """The next group, written to ``out[positions]`` (flat ``out``, all of it for ``None``).

        Raises:
            ValueError: an index out of range, sizes that differ, a corrupt stream.
        """
        self.coder._decode_scatter(self._decoder, indexes, out, positions)


def _int32_values(symbols: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got dtype {symbols.dtype}")
    values = symbols.reshape(-1).astype(np.int64)
    if values.size and (values.min() < -(2**31) or values.max() >= 2**31):
        raise ValueError(f"symbols must fit int32, got range {values.min()}..{values.max()}")
    return values


def _range_decoder(data: bytes) -> Any:
    if len(data) % 4:
        raise ValueError(f"stream length {len(data)} is not a multiple of 4 bytes")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    return constriction.stream.queue.RangeDecoder(words)


def _encode_escapes(
    encoder: Any, below: npt.NDArray[np.bool_], distance: npt.NDArray[np.int64]
) -> None:
    """Exp-Golomb-like code of escape distances: sign, exponent, then mantissa chunks.

    With ``n = distance + 1 = 2**k + m``: one binary side, ``k`` uniform over
    ``0..32``, then ``m``'s ``k`` bits as up to two uniform symbols of at most 16 bits.
    """
    uniform = constriction.stream.model.Uniform()
    n = distance + 1
    exponent = np.frexp(n.astype(np.float64))[1].astype(np.int64) - 1  # exact below 2**53
    mantissa = n - (np.int64(1) << exponent)
    encoder.encode(below.astype(np.int32), uniform, np.full(below.size, 2, dtype=np.int32))
    encoder.encode(
        exponent.astype(np.int32), uniform, np.full(n.size, _MAX_EXPONENT + 1, dtype=np.int32)
    )
    for low_bits, chunk in _chunks(exponent):
        values = (mantissa[chunk] >> low_bits) & ((1 << _CHUNK_BITS) - 1)
        sizes = np.int64(1) << np.minimum(exponent[chunk] - low_bits, _CHUNK_BITS)
        encoder.encode(values.astype(np.int32), uniform, sizes.astype(np.int32))


def _decode_escapes(
    decoder: Any, count: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Invert `_encode_escapes` for ``count`` escaped symbols."""
    uniform = constriction.stream.model.Uniform()
    below = decoder.decode(uniform, np.full(count, 2, dtype=np.int32)).astype(bool)
    exponent = decoder.decode(uniform, np.full(count, _MAX_EXPONENT + 1, dtype=np.int32)).astype(
        np.int64
    )
    mantissa = np.zeros(count, dtype=np.int64)
    for low_bits, chunk in _chunks(exponent):
        sizes = np.int64(1) << np.minimum(exponent[chunk] - low_bits, _CHUNK_BITS)
        values = decoder.decode(uniform, sizes.astype(np.int32)).astype(np.int64)
        mantissa[chunk] |= values << low_bits
    return below, (np.int64(1) << exponent) + mantissa - 1


def _chunks(
    exponent: npt.NDArray[np.int64],
) -> list[tuple[int, npt.NDArray[np.bool_]]]:
    """(lowest bit, which escapes still have mantissa bits there) per 16-bit chunk."""
    return [(low_bits, exponent > low_bits) for low_bits in range(0, _MAX_EXPONENT, _CHUNK_BITS)]
