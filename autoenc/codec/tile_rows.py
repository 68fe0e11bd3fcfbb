# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Entropy decoding of an ``.aec`` file's tile rows, in this process or in forked workers.

:class:`LatentRows` hands the decoder one full-width latent strip per tile row, in row order.
With ``workers > 1`` (CPU models, where ``fork`` exists) the tiles are entropy-decoded by a
pool of forked processes, each with one torch thread, a bounded number of rows ahead, while
this process synthesises and writes the rows already decoded: the entropy decoder is mostly
single-threaded (the coder, the stage loop), so two cores decode about twice as fast.

Invariants:
    * the strips, and every error, are those of the in-process decoder: a job that fails in
      a worker (a crafted file, a worker that died) is decoded again here, which raises the
      error that names the tile (or succeeds: then the result is the same);
    * at most ``workers + 2`` rows are decoded ahead of the one being written (memory stays
      flat in the scene's height); tile bytes are read here, in file order, so the layout
      checks of :func:`decode_row` hold.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autoenc.codec.payload import PayloadError, unpack_tile
from autoenc.models import DeviceMismatchError
from autoenc.tiling import TileGrid

Tile = tuple[int, list[bytes], "int | None"]  # (column, group streams, index checksum)

#: Most latent values (= pixels) entropy-decoded in one call: 4 tiles of 512², 1 of 1024².
DECODE_BATCH_PX = 1 << 20


def default_workers() -> int:
    """Worker processes of a CPU decode: the usable cores (at most 8), 0 without ``can_fork``."""
    if not can_fork():
        return 0
    cores = len(os.sched_getaffinity(0))
    return min(cores, 8) if cores > 1 else 0


def can_fork() -> bool:
    """Whether decode workers can be forked here: Linux only.

    Elsewhere ``fork`` is missing (Windows) or unsafe under the system's libraries (macOS).
    """
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


@dataclass(frozen=True)
class RowDecoder:
    """Decodes the tiles of one row into their core latents: the work a worker does.

    ``rate``: the model's decode arguments; ``encoded_on``: the encoder's device type (a checksum
    mismatch between two devices of one type means altered bytes, not another device).
    """

    grid: TileGrid
    model: Any
    device: torch.device
    rate: dict[str, Any]
    encoded_on: str

    def tiles(self, r: int, row_tiles: list[Tile]) -> list[torch.Tensor]:
        """The core latents (C, h, w) of ``row_tiles`` of row ``r``, in their order.

        A model whose coding is exact under batching (``model.exact_batching``: integer context
        nets) decodes runs of same-shape tiles in one call; if such a call fails, its tiles are
        decoded one by one, so the error names the tile.
        """
        decoded: dict[int, torch.Tensor] = {}
        if getattr(self.model, "exact_batching", False):
            for run in _same_shape_runs(self.grid, r, row_tiles):
                decoded.update(self._run(r, run))
        return [
            decoded[c] if c in decoded else self._tile(r, c, groups, checksum)
            for c, groups, checksum in row_tiles
        ]

    def _run(self, r: int, run: list[Tile]) -> dict[int, torch.Tensor]:
        """Same-shape tiles of row ``r`` in one call: column -> core latent, or {} if it fails."""
        if len(run) < 2 or len({len(g) for _, g, _ in run}) != 1:
            return {}
        lc = self.grid.latent_core(r, run[0][0])
        strings = [[g[k] for _, g, _ in run] for k in range(len(run[0][1]))]
        kwargs: dict[str, Any] = dict(self.rate)
        checksums = [chk for _, _, chk in run]
        if any(chk is None for chk in checksums):
            if not all(chk is None for chk in checksums):
                return {}  # mixed: each tile checks its own, one by one
        else:
            kwargs["checksums"] = checksums
        try:
            y_hat = self.model.decompress_latent(strings, [lc.h, lc.w], **kwargs)
        except (MemoryError, KeyboardInterrupt):
            raise
        except BaseException:  # noqa: BLE001 - decoded one by one next, which names the tile
            return {}
        if not bool(torch.isfinite(y_hat).all()):
            return {}
        return {c: y_hat[i].to(self.device) for i, (c, _, _) in enumerate(run)}

    def _tile(self, r: int, c: int, groups: list[bytes], checksum: int | None) -> torch.Tensor:
        """Entropy-decode tile ``(r, c)``'s core latent (C, h, w); every failure names the tile."""
        lc = self.grid.latent_core(r, c)
        strings = [[g] for g in groups]
        kwargs: dict[str, Any] = {"checksums": [checksum]} if checksum is not None else {}
        kwargs.update(self.rate)
        try:
            y_hat = self.model.decompress_latent(strings, [lc.h, lc.w], **kwargs)
        except DeviceMismatchError:
            here = torch.device(self.device).type
            if self.encoded_on != here:
                raise
            raise PayloadError(
                f"tile ({r}, {c}): its entropy parameters differ from the encoder's although "
                f"both ran on {here}: its bytes were altered"
            ) from None
        except (MemoryError, KeyboardInterrupt):
            raise
        except RuntimeError as e:
            if "out of memory" in str(e).lower():
                raise
            raise PayloadError(f"tile ({r}, {c}) does not decode: {e}") from None
        except Exception as e:  # noqa: BLE001 - a crafted payload may break the coder anyhow
            why = f"{type(e).__name__}: {e}"
            raise PayloadError(f"tile ({r}, {c}) does not decode: {why}") from None
        except BaseException as e:  # a Rust panic in the coder (pyo3's PanicException)
            if type(e).__name__ != "PanicException":
                raise
            raise PayloadError(f"tile ({r}, {c}) does not decode: coder panic: {e}") from None
        return y_hat[0].to(self.device)


def _same_shape_runs(grid: TileGrid, r: int, row_tiles: list[Tile]) -> list[list[Tile]]:
    """Consecutive tiles of row ``r`` with the same latent core shape, DECODE_BATCH_PX at most."""
    most = max(1, DECODE_BATCH_PX // (grid.tile * grid.tile))
    runs: list[list[Tile]] = []
    last = None
    for t in row_tiles:
        lc = grid.latent_core(r, t[0])
        if (lc.h, lc.w) != last or len(runs[-1]) == most:
            runs.append([])
            last = (lc.h, lc.w)
        runs[-1].append(t)
    return runs


#: The forked workers' decoder: set in the parent just before the pool forks (inherited).
_WORKER: RowDecoder | None = None


def _init_worker() -> None:
    torch.set_num_threads(1)  # one core per worker; no OpenMP pool across a fork


def _work(r: int, job: list[Tile]) -> list[np.ndarray] | None:
    """A worker's job: the core latents of ``job``'s tiles (numpy), or None if it failed."""
    assert _WORKER is not None
    try:
        with torch.inference_mode():
            return [t.numpy() for t in _WORKER.tiles(r, job)]
    except BaseException:  # noqa: BLE001 - the parent decodes it again, and names the error
        return None


class TileRow:
    """One tile row's core latents, each available once its worker has decoded it."""

    def __init__(
        self, r: int, tiles: list[Tile], decoder: RowDecoder, jobs: list[tuple[int, Future[Any]]]
    ) -> None:
        """``jobs``: (first column, future) of each run handed to the pool ([]: decode here)."""
        self.r, self._tiles, self._decoder, self._jobs = r, tiles, decoder, jobs
        self._done: list[torch.Tensor] | None = None if jobs else self._here()
        self._got: dict[int, torch.Tensor] = {}

    def _here(self) -> list[torch.Tensor]:
        with torch.inference_mode():
            return self._decoder.tiles(self.r, self._tiles)

    def tile(self, c: int) -> torch.Tensor:
        """Tile ``c``'s core latent (C, h, w), once its worker has decoded it.

        A failed job is decoded here, with the whole row, which raises the error that names
        the tile.
        """
        if self._done is not None:
            return self._done[c]
        if c not in self._got:
            first, fut = next((f, j) for f, j in reversed(self._jobs) if f <= c)
            try:
                got = fut.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory)
                got = None
            if got is None:
                self._done = self._here()
                return self._done[c]
            device = self._decoder.device
            self._got.update({first + i: torch.from_numpy(a).to(device) for i, a in enumerate(got)})
        return self._got[c]

    def width(self, c: int) -> int:
        """Latent width of tile ``c`` (without waiting)."""
        return self._decoder.grid.latent_core(self.r, c).w

    def height(self) -> int:
        """Latent height of the row (without waiting)."""
        return self._decoder.grid.latent_core(self.r, 0).h


class LatentRows:
    """The tile rows of a file, in order, handed to worker processes a few rows ahead.

    Use as a context manager (the worker pool is shut down on exit); :meth:`row` reads the
    rows' TILE chunks through ``read``, in file order.
    """

    def __init__(
        self,
        decoder: RowDecoder,
        entries: Iterator[Any],
        read: Callable[[Any], bytes],
        workers: int = 0,
    ) -> None:
        """``entries``: the file's TILE entries in order; ``workers`` < 2 decodes here."""
        self.decoder = decoder
        self._entries = entries
        self._read = read
        cpu = torch.device(decoder.device).type == "cpu"
        # onnxruntime sessions hold thread pools that a fork would not carry over
        safe = cpu and getattr(decoder.model, "fork_safe", True) and can_fork()
        self.workers = int(workers) if workers > 1 and safe else 0
        self._pool: ProcessPoolExecutor | None = None
        self._rows: dict[int, TileRow] = {}
        self._read_rows = 0
        self._running: list[Future[Any]] = []  # jobs handed to the pool, not seen done yet

    def __enter__(self) -> LatentRows:  # noqa: D105
        return self

    def __exit__(self, *exc: object) -> None:  # noqa: D105
        global _WORKER
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            _WORKER = None

    def _row_tiles(self, r: int) -> list[Tile]:
        """Read row ``r``'s TILE chunks (the next ones in the file)."""
        out: list[Tile] = []
        for c in range(self.decoder.grid.shape[1]):
            row, col, groups, checksum = unpack_tile(self._read(next(self._entries)))
            if (row, col) != (r, c):
                raise PayloadError(f"tile ({row}, {col}) found where ({r}, {c}) belongs")
            out.append((c, groups, checksum))
        return out

    def _submit(self, r: int, row_tiles: list[Tile]) -> list[tuple[int, Future[Any]]]:
        """Hand row ``r``'s runs of tiles to the pool ([] if it broke: decoded here then)."""
        global _WORKER
        if self._pool is None:
            prepare = getattr(self.decoder.model, "prepare_decoding", None)
            if prepare is not None:  # caches built once, here, and inherited by the workers
                prepare(self.decoder.rate.get("quality"))
            _WORKER = self.decoder
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("fork"), initializer=_init_worker
            )
        runs = _same_shape_runs(self.decoder.grid, r, row_tiles)
        try:
            with warnings.catch_warnings():  # Python >= 3.12 warns of fork with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                jobs = [(run[0][0], self._pool.submit(_work, r, run)) for run in runs]
        except BrokenProcessPool:  # a worker died: the rest is decoded here
            self.workers = 0
            return []
        self._running += [fut for _, fut in jobs]
        return jobs

    def drained(self) -> bool:
        """Whether every row has been handed out and no job of the pool is still running."""
        if self._read_rows < self.decoder.grid.shape[0]:
            return False
        self._running = [f for f in self._running if not f.done()]
        return not self._running

    def row(self, r: int) -> TileRow:
        """Row ``r`` (rows are asked for in order); the pool gets the rows after it meanwhile.

        Rows before ``r`` are forgotten here (the caller keeps what its halo needs).
        """
        rows = self.decoder.grid.shape[0]
        ahead = r + (self.workers + 1 if self.workers else 0)
        while self._read_rows < rows and self._read_rows <= ahead:
            k = self._read_rows
            tiles = self._row_tiles(k)
            jobs = self._submit(k, tiles) if self.workers else []
            self._rows[k] = TileRow(k, tiles, self.decoder, jobs)
            self._read_rows += 1
        for k in [k for k in self._rows if k < r]:
            del self._rows[k]
        return self._rows[r]
