# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Whole GeoTIFF scenes <-> ``.aec`` files, tile by tile, in bounded memory.

Compression repeats the training preprocessing recorded in the checkpoint (input kind,
calibration, dB window), adds the per-scene offset of :mod:`autoenc.sar.offset` to the dB, fills
invalid pixels with :data:`FILL_UNIT`, runs ``g_a`` on each tile plus a halo, codes only the
tile's core latent (see :mod:`autoenc.tiling`) and stores the validity mask and the raw values
of invalid pixels losslessly. Valid pixels outside the window are kept in the exception layer
(``exceptions="keep"``, the default; quantised to ``exception_step`` dB, with no noise floor,
:mod:`autoenc.codec.exceptions`) or clipped (``"clip"``, counted).
The network's input, and so the learned stream, is the same in both modes. Decompression
lives in :mod:`autoenc.codec.decode` (re-exported here).

Refused before any work: an output that is the input (a path, symlink or hard link to it), an
existing output without ``overwrite``, a dtype the decoder cannot restore
(:mod:`autoenc.codec.dtypes`), a tiling outside :data:`autoenc.codec.header.LIMITS`; after
coding (the temp file is deleted, nothing appears at ``dst``): a scene without a valid pixel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

import autoenc
from autoenc.atomic import check_output, same_file
from autoenc.codec.container import FORMAT_VERSION, ContainerWriter, CorruptStreamError
from autoenc.codec.decode import decompress_scene
from autoenc.codec.dtypes import check_scene_dtype
from autoenc.codec.exceptions import CHUNK_OVERHEAD, find_exceptions, pack_exceptions
from autoenc.codec.header import (
    CLIP,
    LIMITS,
    ExceptionCoding,
    InputRecord,
    ModelRecord,
    SceneHeader,
    check_step,
    check_tiling,
    parse_header,
)
from autoenc.codec.model_io import LoadedCodec
from autoenc.codec.payload import pack_mask, pack_tile
from autoenc.codec.rate import rate_kwargs, recorded_rate
from autoenc.codec.stats import CodecStats
from autoenc.sar.geotiff import SceneReader
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.offset import DbOffset, choose_offset, parse_offset, scene_levels
from autoenc.sar.radiometry import VALID, BlockConverter, row_extents
from autoenc.sar.scene_input import open_input
from autoenc.tiling import TileGrid, receptive_halo

__all__ = ["FILL_UNIT", "CodecStats", "compress_scene", "decompress_scene"]

#: Network input of invalid pixels: mid-window, a flat field the codec spends almost no bits on.
FILL_UNIT = 0.5
#: Lowest dB the compressor's converter keeps, in the scene's units (float32 intensities below
#: 1e-37 are subnormal): far under any noise floor, so in effect no floor.
CODEC_FLOOR_DB = -370.0


#: Tile core side of models that name none (``default_tile``).
DEFAULT_TILE = 512
#: Input pixels per ``g_a`` call by default: 4 tiles of 512², 1 of 1024² (bounded memory).
ENCODE_BATCH_PX = 4 * 512 * 512


def encode_batch(tile: int) -> int:
    """Default tile windows per ``g_a`` call for tiles of side ``tile``."""
    return max(1, ENCODE_BATCH_PX // (tile * tile))


def _no_valid_pixel(src: Path, n: int) -> ValueError:
    # Nothing to code: the file would hold only the invalid values, and almost surely the
    # band, the nodata tag or the input kind is wrong.
    return ValueError(
        f"{src}: no valid pixel (all {n:,} are nodata, NaN, <= 0 or zero border); nothing to "
        "compress: check --band, the nodata tag and --input-kind"
    )


def compress_scene(
    src: Path,
    dst: Path,
    codec: LoadedCodec,
    tile: int | None = None,
    halo: int | None = None,
    latent_halo: int | None = None,
    batch_size: int | None = None,
    band: int | str | None = None,
    input_kind: str = "auto",
    calibration: str = "auto",
    calibration_lut: str = "sigmaNought",
    advance: Callable[[int], None] | None = None,
    quality: int | None = None,
    overwrite: bool = True,
    exceptions: str = "keep",
    exception_step: float = 0.05,
    offset_db: str | float = "auto",
) -> CodecStats:
    """Compress one GeoTIFF scene into ``dst`` (written atomically).

    ``quality`` picks the operating point of a variable-rate model (default: its default
    quality); a fixed-rate model accepts only ``None``. ``overwrite=False`` refuses an
    existing ``dst`` (the CLI's default); ``dst`` is never ``src``. ``exceptions="keep"``
    codes every valid pixel outside the dB window beside the learned stream, within
    ``exception_step / 2`` dB of its input (below the noise floor too); ``"clip"`` clips them.
    ``offset_db`` (``auto``, ``median`` or dB; :mod:`autoenc.sar.offset`) is added to the
    scene's dB before the window and subtracted on decode (the header carries it).
    ``tile`` defaults to the model's ``default_tile`` (else :data:`DEFAULT_TILE`),
    ``batch_size`` (tile windows per ``g_a`` call) to :func:`encode_batch` of the tile.

    Raises:
        ValueError: ``dst`` is ``src``, an unsupported dtype, tiling, mode or step, a scene
            without a valid pixel (OutputExistsError: ``dst`` exists, without ``overwrite``).
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if same_file(src, dst):
        raise ValueError(f"output {dst} is the input {src}; choose another output")
    check_output(dst, overwrite)
    if exceptions not in ("keep", "clip"):
        raise ValueError(f"exceptions must be 'keep' or 'clip', got {exceptions!r}")
    check_step(float(exception_step), str(src))
    offset_mode = parse_offset(offset_db)
    model, pre = codec.model, codec.preprocessing
    tile = int(getattr(model, "default_tile", DEFAULT_TILE)) if tile is None else tile
    batch_size = encode_batch(tile) if batch_size is None else batch_size
    rate = rate_kwargs(model, quality, str(src))
    norm = pre.normalisation
    lo, hi = norm.window
    keep = ExceptionCoding("keep", float(exception_step), (lo, hi))  # edges: format version 3
    coding = keep if exceptions == "keep" else CLIP
    device = next(model.parameters()).device
    with SceneReader(src, band) as probe:  # before input-kind detection has its own say
        check_scene_dtype(probe.dtype, str(src))
    reader, conv, info = open_input(
        src, band, input_kind, calibration, calibration_lut, float(norm.noise_floor_db)
    )
    with reader:
        if (halo is None or latent_halo is None) and codec.halos is None:
            codec.halos = receptive_halo(
                model.g_a, model.g_s, model.latent_channels, model.downsampling_factor
            )
        if codec.halos is not None:
            halo = codec.halos[0] if halo is None else halo
            latent_halo = codec.halos[1] if latent_halo is None else latent_halo
        assert halo is not None and latent_halo is not None
        h, w = reader.height, reader.width
        check_tiling(h, w, tile, halo, latent_halo, model.downsampling_factor, str(src))
        grid = TileGrid(h, w, tile, halo, latent_halo, model.downsampling_factor)
        first, last = row_extents(reader)
        if not (first <= last).any():
            raise _no_valid_pixel(src, h * w)
        # a given offset needs no pass over the scene
        levels = scene_levels(reader, conv, first, last) if isinstance(offset_mode, str) else None
        try:
            offset = choose_offset(offset_mode, levels, (lo, hi))
        except ValueError as e:
            raise ValueError(f"{src}: {e}") from None
        # No floor but the format's: the network sees only the window, and every valid value
        # outside it, below the model's noise floor too, goes to the exception layer (which
        # saturates at ±LIMITS.db). CODEC_FLOOR_DB keeps the floor a normal float32 intensity.
        floor = max(offset.input_floor(-LIMITS.db), CODEC_FLOOR_DB)
        conv = BlockConverter(conv.kind, conv.nodata, floor, conv.calibration)
        header = SceneHeader(
            autoenc=autoenc.__version__, device=device.type,
            model=ModelRecord(codec.weights_sha256, codec.path.name, *recorded_rate(model, rate)),
            normalisation=norm, fill_unit=FILL_UNIT, exceptions=coding,
            input=InputRecord(conv.kind, reader.dtype, info["units"], reader.band,
                              info["polarisation"], conv.calibration, offset),
            grid=grid, source=src.name, geo=reader.geo,
        ).to_dict()  # fmt: skip
        try:  # what the reader would refuse is refused here, before anything is written
            parse_header(json.loads(json.dumps(header)), str(src), 1 << 62, FORMAT_VERSION)
        except CorruptStreamError as e:
            raise ValueError(f"{src}: cannot be coded: {e.reason}") from None
        stats = CodecStats(str(src), str(dst), h, w, 0, 0.0, 0.0, offset_db=offset.offset_db,
                           offset_reason=offset.reason)  # fmt: skip
        if "requested" in info["calibration"]:  # mixed inputs: --calibration is for DN files
            c = info["calibration"]
            stats.calibration_note = f"--calibration {c['requested']} not applied ({c['reason']})"
        rows, cols = grid.shape
        with ContainerWriter(dst, header, overwrite) as out, torch.inference_mode():
            for r in range(rows):
                pending: dict[tuple[int, int], list[tuple[int, NDArray[np.float32]]]] = {}
                coded: dict[int, bytes] = {}  # TILE payloads of this row, written in column order
                for c in range(cols):
                    win, _ = grid.encode_window(r, c)
                    unit = _encode_input(reader, (conv, offset), grid, r, c, first, last, (lo, hi),
                                         coding, stats, out)  # fmt: skip
                    group = pending.setdefault((win.h, win.w), [])
                    group.append((c, unit))
                    if len(group) == batch_size:  # bounded memory: encode full batches at once
                        batch = pending.pop((win.h, win.w))
                        coded.update(_encode_batch(model, grid, r, batch, rate))
                for group in pending.values():
                    coded.update(_encode_batch(model, grid, r, group, rate))
                for c in range(cols):
                    out.add_chunk(b"TILE", coded[c])
                if advance is not None:
                    advance(1)
            if stats.invalid >= h * w:  # raised inside the writer: no file appears
                raise _no_valid_pixel(src, h * w)
            stat = {k: v for k, v in asdict(stats).items() if k not in ("source", "output")}
            out.add_chunk(b"STAT", json.dumps(stat).encode())
        stats.file_bytes = dst.stat().st_size
    stats.bpp = stats.file_bytes * 8 / (h * w)
    stats.seconds = time.perf_counter() - t0
    return stats


def _encode_input(
    reader: Any,
    radiometry: tuple[BlockConverter, DbOffset],
    grid: TileGrid,
    r: int,
    c: int,
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    window: tuple[float, float],
    coding: ExceptionCoding,
    stats: CodecStats,
    out: ContainerWriter,
) -> NDArray[np.float32]:
    """Read one tile's input window as network input; store its core's MASK (and EXCP).

    ``radiometry``: the scene's converter to dB and the per-scene offset into the model's dB.
    """
    conv, offset = radiometry
    h, w = grid.height, grid.width
    lo, hi = window
    win, _ = grid.encode_window(r, c)
    hh, ww = min(win.h, h - win.y), min(win.w, w - win.x)  # the part inside the scene
    raw = reader.read(win.y, win.x, hh, ww)
    valid = conv.reasons(raw, first[win.y : win.y + hh], last[win.y : win.y + hh], win.x) == VALID
    db = offset.apply(conv.to_db(raw, win.y, win.x))
    unit = Normalisation(lo, hi).to_unit(db)
    unit[~valid] = FILL_UNIT
    if hh < win.h or ww < win.w:  # padding past the scene repeats its last row and column
        unit = np.pad(unit, ((0, win.h - hh), (0, win.w - ww)), mode="edge")
    core = grid.core(r, c)
    ys, xs = core.y - win.y, core.x - win.x
    ch, cw = min(core.h, h - core.y), min(core.w, w - core.x)
    v = valid[ys : ys + ch, xs : xs + cw]
    core_db = db[ys : ys + ch, xs : xs + cw]
    stats.invalid += int((~v).sum())
    out.add_chunk(b"MASK", pack_mask(r, c, v, raw[ys : ys + ch, xs : xs + cw]))
    if coding.step_db is None:
        d = core_db[v]
        stats.clipped_low += int((d < lo).sum())
        stats.clipped_high += int((d > hi).sum())
        return unit
    pos = find_exceptions(core_db, v, window)
    if len(pos):
        payload = pack_exceptions(r, c, pos, core_db.ravel()[pos], coding)
        out.add_chunk(b"EXCP", payload)
        stats.exceptions += len(pos)
        stats.exception_bytes += len(payload) + CHUNK_OVERHEAD
    return unit


def _encode_batch(
    model: Any,
    grid: TileGrid,
    r: int,
    batch: list[tuple[int, NDArray[np.float32]]],
    rate: dict[str, int],
) -> dict[int, bytes]:
    """g_a on same-shape windows (B, 1, h, w), then entropy-code each core latent.

    A model with ``exact_batching`` codes same-shape cores in one call (the same bytes per
    tile as one by one); others tile by tile.
    """
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack([u for _, u in batch])[:, None]).to(device)
    y = model.encode(x)
    cores: dict[int, torch.Tensor] = {}
    for (c, _), yi in zip(batch, y, strict=True):
        _, crop = grid.encode_window(r, c)
        cores[c] = yi[None, :, crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
    groups: list[list[int]] = []
    for c, core in cores.items():
        same = groups and cores[groups[-1][0]].shape == core.shape
        if same and getattr(model, "exact_batching", False):
            groups[-1].append(c)
        else:
            groups.append([c])
    out = {}
    for cols in groups:
        latent = torch.cat([cores[c] for c in cols]).float().contiguous()
        coded = model.compress_latent(latent, **rate)
        checksums = coded.get("checksums") or [None] * len(cols)
        for i, c in enumerate(cols):
            out[c] = pack_tile(r, c, [g[i] for g in coded["strings"]], checksums[i])
    return out
