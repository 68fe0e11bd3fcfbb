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

import os
import time
from collections.abc import Callable
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
    unpack_tile,
)
from autoenc.codec.rate import header_rate
from autoenc.codec.stats import CodecStats
from autoenc.models import DeviceMismatchError
from autoenc.sar.geotiff import GeoTiffWriter
from autoenc.tiling import TileGrid


def decompress_scene(
    src: Path,
    dst: Path,
    load: Callable[[SceneHeader], LoadedCodec],
    advance: Callable[[int], None] | None = None,
    despeckle: Despeckle | None = None,
    overwrite: bool = True,
) -> CodecStats:
    """Decompress ``src`` into a GeoTIFF at ``dst``; ``load(header)`` supplies the model.

    ``despeckle`` reconstructs towards the clean reflectivity (see
    :mod:`autoenc.codec.despeckle`; wavelet codecs only); by default the model's own choice
    for the file's quality. ``overwrite=False`` refuses an existing ``dst``; ``dst`` is never
    ``src``.

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
            with GeoTiffWriter(dst, grid.height, grid.width, dtype, sh.geo,
                               overwrite=overwrite) as out:  # fmt: skip
                _decode(reader, kinds["TILE"], (masks, excps), grid, sh, model, rate, out,
                        advance)  # fmt: skip
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
    tiles = iter(tile_entries)
    latents: dict[int, torch.Tensor] = {}  # latent tile rows, full width: (C, h_r, W/f)
    next_row = 0
    with torch.inference_mode():
        for r in range(rows):
            while next_row < rows and next_row <= r + reach:
                latents[next_row] = _decode_latent_row(
                    reader, tiles, grid, model, next_row, device, rate, sh.device
                )
                next_row += 1
            for k in [k for k in latents if k < r - reach]:
                del latents[k]
            strip = torch.cat([latents[k] for k in sorted(latents)], dim=1)
            top = min(latents) * lat_tile
            for c in range(cols):
                lw, crop = grid.decode_window(r, c)
                z = strip[None, :, lw.y - top : lw.y - top + lw.h, lw.x : lw.x + lw.w]
                x_hat = model.decode(z.to(net_dtype)).float()
                ch, cw = core_shape(grid, r, c)
                core = grid.core(r, c)
                unit = x_hat[0, 0, crop.y : crop.y + ch, crop.x : crop.x + cw].cpu().numpy()
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


def _decode_latent_row(
    reader: ContainerReader,
    tiles: Any,
    grid: TileGrid,
    model: Any,
    r: int,
    device: torch.device,
    rate: dict[str, Any],
    encoded_on: str,
) -> torch.Tensor:
    """Entropy-decode one row of tiles into a full-width latent strip (C, h_r, W/f).

    A model whose coding is exact under batching (``model.exact_batching``: integer context
    nets) decodes runs of same-shape tiles in one call; if such a call fails, its tiles are
    decoded one by one, so the error names the tile.
    """
    row_tiles: list[Tile] = []
    for c in range(grid.shape[1]):
        entry = next(tiles)
        row, col, groups, checksum = unpack_tile(reader.read_chunk(entry))
        if (row, col) != (r, c):
            raise PayloadError(f"tile ({row}, {col}) found where ({r}, {c}) belongs")
        row_tiles.append((c, groups, checksum))
    decoded: dict[int, torch.Tensor] = {}
    if getattr(model, "exact_batching", False):
        for run in _same_shape_runs(grid, r, row_tiles):
            decoded.update(_decode_run(grid, model, r, run, device, rate))
    parts = [
        decoded[c] if c in decoded
        else _decode_tile(grid, model, r, c, groups, checksum, device, rate, encoded_on)
        for c, groups, checksum in row_tiles
    ]  # fmt: skip
    return torch.cat(parts, dim=2)


Tile = tuple[int, list[bytes], "int | None"]  # (column, group streams, index checksum)


def _decode_run(
    grid: TileGrid, model: Any, r: int, run: list[Tile], device: torch.device,
    rate: dict[str, Any],
) -> dict[int, torch.Tensor]:  # fmt: skip
    """Same-shape tiles of row ``r`` in one call: column -> core latent, or {} if it fails."""
    if len(run) < 2 or len({len(g) for _, g, _ in run}) != 1:
        return {}
    lc = grid.latent_core(r, run[0][0])
    strings = [[g[k] for _, g, _ in run] for k in range(len(run[0][1]))]
    kwargs: dict[str, Any] = dict(rate)
    checksums = [chk for _, _, chk in run]
    if any(chk is None for chk in checksums):
        if not all(chk is None for chk in checksums):
            return {}  # mixed: each tile checks its own, one by one
    else:
        kwargs["checksums"] = checksums
    try:
        y_hat = model.decompress_latent(strings, [lc.h, lc.w], **kwargs)
    except (MemoryError, KeyboardInterrupt):
        raise
    except BaseException:  # noqa: BLE001 - decoded one by one next, which names the tile
        return {}
    if not bool(torch.isfinite(y_hat).all()):
        return {}
    return {c: y_hat[i].to(device) for i, (c, _, _) in enumerate(run)}


#: Most tiles decoded in one call: memory stays bounded whatever the scene's width.
DECODE_BATCH = 4


def _same_shape_runs(grid: TileGrid, r: int, row_tiles: list[Tile]) -> list[list[Tile]]:
    """Consecutive tiles of row ``r`` with the same latent core shape, at most DECODE_BATCH."""
    runs: list[list[Tile]] = []
    last = None
    for t in row_tiles:
        lc = grid.latent_core(r, t[0])
        if (lc.h, lc.w) != last or len(runs[-1]) == DECODE_BATCH:
            runs.append([])
            last = (lc.h, lc.w)
        runs[-1].append(t)
    return runs


def _decode_tile(
    grid: TileGrid,
    model: Any,
    r: int,
    c: int,
    groups: list[bytes],
    checksum: int | None,
    device: torch.device,
    rate: dict[str, Any],
    encoded_on: str,
) -> torch.Tensor:
    """Entropy-decode tile ``(r, c)``'s core latent (C, h, w); every failure names the tile."""
    lc = grid.latent_core(r, c)
    strings = [[g] for g in groups]
    kwargs: dict[str, Any] = {"checksums": [checksum]} if checksum is not None else {}
    kwargs.update(rate)
    try:
        y_hat = model.decompress_latent(strings, [lc.h, lc.w], **kwargs)
    except DeviceMismatchError:
        here = torch.device(device).type
        if encoded_on != here:
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
        raise PayloadError(f"tile ({r}, {c}) does not decode: {type(e).__name__}: {e}") from None
    except BaseException as e:  # a Rust panic in the coder (pyo3's PanicException)
        if type(e).__name__ != "PanicException":
            raise
        raise PayloadError(f"tile ({r}, {c}) does not decode: coder panic: {e}") from None
    return y_hat[0].to(device)
