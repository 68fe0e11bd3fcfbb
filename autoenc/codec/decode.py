# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""``.aec`` -> GeoTIFF: validate the whole file, then decode row by row of tiles.

Before the model is loaded or the output created, the header is validated field by field
(:mod:`autoenc.codec.header`), every CRC and the chunk layout are checked, and every MASK is
inflated (bounded by its tile's size) against the tile it belongs to, and so is every EXCP
(the exception layer, :mod:`autoenc.codec.exceptions`). Decoding then keeps only the latent
rows the decoder's halo needs, puts the exception values in place of the network's
reconstruction, maps dB back to the input's units and dtype, restores the georeferencing and
writes the GeoTIFF atomically. Format version 1 files (no exception layer) decode as before.

Invariants:
    * anything wrong with a file whose CRCs are right (crafted) raises
      :class:`CorruptStreamError`, never another exception: an entropy decoder that fails, a
      tile that decodes to non-finite values, a hyperprior checksum that disagrees although
      the file was encoded on this kind of device;
    * :class:`DeviceMismatchError` (exit 6) only for a valid file encoded on another kind of
      device whose checksums disagree.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoenc.atomic import check_output, same_file
from autoenc.codec.container import ContainerReader, CorruptStreamError
from autoenc.codec.despeckle import Despeckle, decode_kwargs
from autoenc.codec.dtypes import from_db, window_db
from autoenc.codec.exceptions import index_exceptions, unpack_exceptions
from autoenc.codec.header import SceneHeader, parse_header
from autoenc.codec.model_io import LoadedCodec, ModelError
from autoenc.codec.payload import (
    PayloadError,
    check_layout,
    check_stat,
    core_shape,
    index_masks,
    unpack_mask,
)
from autoenc.codec.rate import header_rate
from autoenc.codec.stats import CodecStats
from autoenc.codec.tile_rows import LatentRows, RowDecoder, TileRow, default_workers
from autoenc.sar.geotiff import GeoTiffWriter
from autoenc.tiling import TileGrid, Window

#: Block side of the output GeoTIFF (tiled, as COGs are): decoded tiles are written as whole
#: blocks, 3x faster than into a striped file's strips.
OUTPUT_BLOCK = 256


def decompress_scene(
    src: Path,
    dst: Path,
    load: Callable[[SceneHeader], LoadedCodec],
    advance: Callable[[int], None] | None = None,
    despeckle: Despeckle | None = None,
    overwrite: bool = True,
    workers: int | None = None,
) -> CodecStats:
    """Decompress ``src`` into a GeoTIFF at ``dst``; ``load(header)`` supplies the model.

    ``despeckle`` reconstructs towards the clean reflectivity (see
    :mod:`autoenc.codec.despeckle`; wavelet codecs only); by default the model's own choice
    for the file's quality. ``overwrite=False`` refuses an existing ``dst``; ``dst`` is never
    ``src``. ``workers``: processes that entropy-decode tiles in parallel on a CPU
    (:mod:`autoenc.codec.tile_rows`; default: one per core; 0 or 1: none).

    Raises:
        CorruptStreamError: anything wrong with the file (before the output is created, as far
            as a full CRC walk and a check of every mask can tell).
        ModelError: the model's weights differ from the encoder's.
        ValueError: ``dst`` is ``src`` (OutputExistsError: it exists, without ``overwrite``).
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if same_file(src, dst):
        raise ValueError(f"output {dst} is the input {src}; choose another output")
    check_output(dst, overwrite)
    with ContainerReader(src) as reader:
        sh = parse_header(reader.header, str(src), os.stat(src).st_size, reader.version)
        grid = sh.grid
        kinds = check_layout(reader, grid, str(src))
        dtype = sh.input.dtype
        masks = index_masks(reader, kinds["MASK"], grid, dtype, str(src))
        excps = index_exceptions(reader, kinds["EXCP"], grid, masks, dtype, sh.exceptions,
                                 str(src))  # fmt: skip
        check_stat(reader, kinds["STAT"][0], grid, str(src))
        codec = load(sh)
        if codec.weights_sha256 != sh.model.weights_sha256:
            raise ModelError(
                f"{codec.path} is not the model {src} was encoded with (weights SHA-256 "
                f"{codec.weights_sha256[:12]}… vs {sh.model.weights_sha256[:12]}…)"
            )
        model = codec.model
        if model.downsampling_factor != grid.factor:
            raise CorruptStreamError(
                str(src), 0, f"header field tiling.factor {grid.factor} is not the model's "
                f"downsampling factor {model.downsampling_factor}"
            )  # fmt: skip
        rate: dict[str, Any] = dict(header_rate(model, sh.model, codec, str(src)))
        rate.update(decode_kwargs(model, despeckle or Despeckle(), sh.window, rate.get("quality")))
        try:
            with GeoTiffWriter(dst, grid.height, grid.width, dtype, sh.geo, tile=OUTPUT_BLOCK,
                               overwrite=overwrite) as out:  # fmt: skip
                _decode(reader, kinds["TILE"], (masks, excps), grid, sh, model, rate, out,
                        advance, default_workers() if workers is None else workers)  # fmt: skip
        except PayloadError as e:
            raise CorruptStreamError(str(src), 0, str(e)) from None
    size = src.stat().st_size
    h, w = grid.height, grid.width
    return CodecStats(str(src), str(dst), h, w, size, size * 8 / (h * w), time.perf_counter() - t0)


def _decode(
    reader: ContainerReader,
    tile_entries: list[Any],
    side: tuple[dict[tuple[int, int], Any], dict[tuple[int, int], Any]],
    grid: TileGrid,
    sh: SceneHeader,
    model: Any,
    rate: dict[str, Any],
    out: GeoTiffWriter,
    advance: Callable[[int], None] | None,
    workers: int,
) -> None:
    """Decode every row of tiles into ``out``; keep only the latent rows the halo needs.

    ``side`` holds the MASK and EXCP entries by tile (every tile has a MASK, some an EXCP).
    """
    masks, excps = side
    device = next(model.parameters()).device
    net_dtype = next(iter([*model.g_s.parameters()]), torch.empty(0)).dtype
    rows, cols = grid.shape
    lat_tile = grid.tile // grid.factor
    reach = -(-grid.latent_halo // lat_tile) if grid.latent_halo else 0
    latents: dict[int, TileRow] = {}  # the rows the halo needs, their tiles decoded lazily
    decoder = RowDecoder(grid, model, device, rate, sh.device)
    source = LatentRows(decoder, iter(tile_entries), reader.read_chunk, workers)
    next_row = 0
    threads = torch.get_num_threads()
    with source, torch.inference_mode(), _main_threads(1 if source.workers else None):
        for r in range(rows):
            while next_row < rows and next_row <= r + reach:
                latents[next_row] = source.row(next_row)
                next_row += 1
            for k in [k for k in latents if k < r - reach]:
                del latents[k]
            for c in range(cols):
                if source.workers and torch.get_num_threads() != threads and source.drained():
                    torch.set_num_threads(threads)  # the last tiles: the workers are done
                lw, crop = grid.decode_window(r, c)
                z = _window(latents, lw, lat_tile)
                ch, cw = core_shape(grid, r, c)
                core = grid.core(r, c)
                x_hat = model.decode_region(z.to(net_dtype), Window(crop.y, crop.x, ch, cw))
                unit = x_hat[0, 0].float().cpu().numpy()
                if not np.isfinite(unit).all():
                    raise PayloadError(f"tile ({r}, {c}) decodes to non-finite values")
                db = window_db(unit, sh)
                chunk = reader.read_chunk(masks[(r, c)])
                _, _, valid, raw = unpack_mask(chunk, (ch, cw), sh.input.dtype)
                if (r, c) in excps and sh.exceptions.step_db is not None:
                    data = reader.read_chunk(excps[(r, c)])
                    _, _, pos, excp_db = unpack_exceptions(data, valid, sh.exceptions)
                    db.flat[pos] = excp_db  # row-major linear indexes into (ch, cw)
                values = from_db(db, sh, core.y, core.x)
                values[~valid] = raw
                out.write(values, core.y, core.x)
            if advance is not None:
                advance(1)


@contextlib.contextmanager
def _main_threads(n: int | None) -> Iterator[None]:
    """Torch threads of this process set to ``n`` inside (None: unchanged), restored after.

    With decode workers busy on every core, one thread here synthesises faster (measured:
    1.63 vs 1.78 s for a 4096² scene on 2 cores) than a pool competing with them.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None:
            torch.set_num_threads(before)


def _window(latents: dict[int, TileRow], lw: Window, lat_tile: int) -> torch.Tensor:
    """The latent window ``lw`` (1, C, h, w) cut from the decoded tiles (only what it covers)."""
    rows = []
    for k in sorted(latents):
        row, top = latents[k], k * lat_tile
        y0, y1 = max(lw.y, top), min(lw.y + lw.h, top + row.height())
        if y0 >= y1:
            continue
        pieces = []
        c = lw.x // lat_tile
        while c * lat_tile < lw.x + lw.w:
            left = c * lat_tile
            x0, x1 = max(lw.x, left), min(lw.x + lw.w, left + row.width(c))
            pieces.append(row.tile(c)[:, y0 - top : y1 - top, x0 - left : x1 - left])
            c += 1
        rows.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2))
    return (rows[0] if len(rows) == 1 else torch.cat(rows, dim=1))[None]
