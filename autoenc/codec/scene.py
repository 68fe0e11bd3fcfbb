# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Whole GeoTIFF scenes <-> ``.aec`` files, tile by tile, in bounded memory.

Compression repeats the training preprocessing recorded in the checkpoint (input kind,
calibration, noise floor, dB window), fills invalid pixels with :data:`FILL_UNIT`, runs ``g_a``
on each tile plus a halo, codes only the tile's core latent (see :mod:`autoenc.tiling`) and
stores the validity mask and the raw values of invalid pixels losslessly. Decompression
validates the whole file first, then decodes row by row of tiles, keeping only the latent rows
the decoder's halo needs, maps values back to the input's units and dtype, restores the
georeferencing and writes the GeoTIFF atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

import autoenc
from autoenc.codec.container import ContainerReader, ContainerWriter, CorruptStreamError
from autoenc.codec.despeckle import Despeckle, decode_kwargs
from autoenc.codec.model_io import LoadedCodec, ModelError
from autoenc.codec.payload import (
    PayloadError,
    check_header,
    check_layout,
    pack_mask,
    pack_tile,
    unpack_mask,
    unpack_tile,
)
from autoenc.codec.rate import header_fields, header_rate, rate_kwargs
from autoenc.data.radiometry import VALID, BlockConverter, CalibrationLUT
from autoenc.data.scan import row_extents
from autoenc.data.scene_input import open_input
from autoenc.geotiff import GeoMetadata, GeoTiffWriter
from autoenc.models import DeviceMismatchError
from autoenc.tiling import TileGrid, receptive_halo

#: Network input of invalid pixels: mid-window, a flat field the codec spends almost no bits on.
FILL_UNIT = 0.5


@dataclass
class CodecStats:
    """What one compress or decompress did."""

    source: str
    output: str
    height: int
    width: int
    file_bytes: int
    bpp: float
    seconds: float
    clipped_low: int = 0
    clipped_high: int = 0
    invalid: int = 0

    @property
    def mpix_per_s(self) -> float:
        """Scene megapixels per second."""
        return self.height * self.width / 1e6 / max(self.seconds, 1e-9)


def _units(db: NDArray[np.float32], lo: float, hi: float) -> NDArray[np.float32]:
    return np.clip((db - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)


def _calibration_header(conv: BlockConverter) -> dict[str, Any]:
    cal = conv.calibration
    out: dict[str, Any] = {"constant": cal.constant}
    if cal.lut is not None:
        out["lut"] = {"lines": cal.lut.lines.tolist(), "pixels": cal.lut.pixels.tolist(),
                      "values": cal.lut.values.tolist(), "name": cal.lut.name}  # fmt: skip
    return out


def compress_scene(
    src: Path,
    dst: Path,
    codec: LoadedCodec,
    tile: int = 512,
    halo: int | None = None,
    latent_halo: int | None = None,
    batch_size: int = 4,
    band: int | str | None = None,
    input_kind: str = "auto",
    calibration: str = "auto",
    calibration_lut: str = "sigmaNought",
    advance: Callable[[int], None] | None = None,
    quality: int | None = None,
) -> CodecStats:
    """Compress one GeoTIFF scene into ``dst`` (written atomically).

    ``quality`` picks the operating point of a variable-rate model (default: its default
    quality); a fixed-rate model accepts only ``None``.
    """
    t0 = time.perf_counter()
    model, pre = codec.model, codec.preprocessing
    rate = rate_kwargs(model, quality, str(src))
    norm = pre["normalisation"]
    lo, hi = float(norm["vmin_db"]), float(norm["vmax_db"])
    device = next(model.parameters()).device
    reader, conv, info = open_input(
        src, band, input_kind, calibration, calibration_lut, float(norm["noise_floor_db"])
    )
    with reader:
        trained = [u for u in pre.get("units", []) if u != "unknown"]
        if trained and (info["units"] == "raw DN^2") != ("raw DN^2" in trained):
            raise ValueError(
                f"{src} holds {info['units']} values but the model was trained on "
                f"{', '.join(trained)}; pass the matching --calibration"
            )
        if (halo is None or latent_halo is None) and codec.halos is None:
            codec.halos = receptive_halo(
                model.g_a, model.g_s, model.latent_channels, model.downsampling_factor
            )
        if codec.halos is not None:
            halo = codec.halos[0] if halo is None else halo
            latent_halo = codec.halos[1] if latent_halo is None else latent_halo
        assert halo is not None and latent_halo is not None
        h, w = reader.height, reader.width
        grid = TileGrid(h, w, tile, halo, latent_halo, model.downsampling_factor)
        first, last = row_extents(reader)
        header = {
            "kind": "autoenc-scene",
            "autoenc": autoenc.__version__,
            "model": {
                "spec": codec.spec,
                "weights_sha256": codec.weights_sha256,
                "checkpoint": codec.path.name,
                **header_fields(model, rate),
            },  # fmt: skip
            "preprocessing": {"normalisation": norm, "fill_unit": FILL_UNIT},
            "input": {
                "kind": conv.kind,
                "dtype": reader.dtype.name,
                "units": info["units"],
                "band": reader.band,
                "polarisation": info["polarisation"],
                "calibration": _calibration_header(conv),
                "nodata": info["nodata"],
            },  # fmt: skip
            "scene": {"height": h, "width": w, "source": src.name},
            "tiling": {
                "tile": tile,
                "halo": halo,
                "latent_halo": latent_halo,
                "factor": grid.factor,
            },  # fmt: skip
            "geo": reader.geo.to_dict(),
            "device": device.type,
        }
        stats = CodecStats(str(src), str(dst), h, w, 0, 0.0, 0.0)
        rows, cols = grid.shape
        with ContainerWriter(dst, header) as out, torch.inference_mode():
            for r in range(rows):
                pending: dict[tuple[int, int], list[tuple[int, NDArray[np.float32]]]] = {}
                coded: dict[int, bytes] = {}  # TILE payloads of this row, written in column order
                for c in range(cols):
                    win, _ = grid.encode_window(r, c)
                    unit = _encode_input(
                        reader, conv, grid, r, c, first, last, (lo, hi), stats, out
                    )
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
            stat = {k: v for k, v in asdict(stats).items() if k not in ("source", "output")}
            out.add_chunk(b"STAT", json.dumps(stat).encode())
        stats.file_bytes = dst.stat().st_size
    stats.bpp = stats.file_bytes * 8 / (h * w)
    stats.seconds = time.perf_counter() - t0
    return stats


def _encode_input(
    reader: Any,
    conv: BlockConverter,
    grid: TileGrid,
    r: int,
    c: int,
    first: NDArray[np.int64],
    last: NDArray[np.int64],
    window: tuple[float, float],
    stats: CodecStats,
    out: ContainerWriter,
) -> NDArray[np.float32]:
    """Read one tile's input window as network input; store its core's mask (MASK chunk)."""
    h, w = grid.height, grid.width
    lo, hi = window
    win, _ = grid.encode_window(r, c)
    hh, ww = min(win.h, h - win.y), min(win.w, w - win.x)  # the part inside the scene
    raw = reader.read(win.y, win.x, hh, ww)
    valid = conv.reasons(raw, first[win.y : win.y + hh], last[win.y : win.y + hh], win.x) == VALID
    db = conv.to_db(raw, win.y, win.x)
    unit = _units(db, lo, hi)
    unit[~valid] = FILL_UNIT
    if hh < win.h or ww < win.w:  # padding past the scene repeats its last row and column
        unit = np.pad(unit, ((0, win.h - hh), (0, win.w - ww)), mode="edge")
    core = grid.core(r, c)
    ys, xs = core.y - win.y, core.x - win.x
    ch, cw = min(core.h, h - core.y), min(core.w, w - core.x)
    v = valid[ys : ys + ch, xs : xs + cw]
    d = db[ys : ys + ch, xs : xs + cw][v]
    stats.clipped_low += int((d < lo).sum())
    stats.clipped_high += int((d > hi).sum())
    stats.invalid += int((~v).sum())
    out.add_chunk(b"MASK", pack_mask(r, c, v, raw[ys : ys + ch, xs : xs + cw]))
    return unit


def _encode_batch(
    model: Any,
    grid: TileGrid,
    r: int,
    batch: list[tuple[int, NDArray[np.float32]]],
    rate: dict[str, int],
) -> dict[int, bytes]:
    """g_a on same-shape windows (B, 1, h, w), then entropy-code each core latent."""
    device = next(model.parameters()).device
    x = torch.from_numpy(np.stack([u for _, u in batch])[:, None]).to(device)
    y = model.encode(x)
    out = {}
    for (c, _), yi in zip(batch, y, strict=True):
        _, crop = grid.encode_window(r, c)
        core_y = yi[None, :, crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]
        coded = model.compress_latent(core_y.float().contiguous(), **rate)
        chk = coded.get("checksums", [None])[0]
        out[c] = pack_tile(r, c, [g[0] for g in coded["strings"]], chk)
    return out


def _from_units(unit: NDArray[np.float32], header: dict[str, Any], y: int, x: int) -> NDArray[Any]:
    """Unit window values -> the input's units and dtype."""
    norm = header["preprocessing"]["normalisation"]
    lo, hi = float(norm["vmin_db"]), float(norm["vmax_db"])
    db = lo + np.clip(unit, 0.0, 1.0).astype(np.float64) * (hi - lo)
    inp = header["input"]
    dtype = np.dtype(inp["dtype"])
    if inp["kind"] == "db":
        return db.astype(dtype)
    if inp["kind"] == "intensity":
        return np.power(10.0, db / 10.0).astype(dtype)
    cal = inp.get("calibration") or {}
    if cal.get("lut"):
        t = cal["lut"]
        lut = CalibrationLUT(
            np.asarray(t["lines"], float), np.asarray(t["pixels"], float),
            np.asarray(t["values"], float), str(t["name"]), "header",
        )  # fmt: skip
        db = db - lut.db_offset(y, x, *unit.shape)
    elif cal.get("constant"):
        db = db + 20.0 * np.log10(float(cal["constant"]))
    amp = np.power(10.0, db / 20.0)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(amp), max(1, info.min), info.max).astype(dtype)
    return amp.astype(dtype)


def decompress_scene(
    src: Path,
    dst: Path,
    load: Callable[[dict[str, Any]], LoadedCodec],
    advance: Callable[[int], None] | None = None,
    despeckle: Despeckle | None = None,
) -> CodecStats:
    """Decompress ``src`` into a GeoTIFF at ``dst``; ``load(header)`` supplies the model.

    ``despeckle`` reconstructs towards the clean reflectivity (see
    :mod:`autoenc.codec.despeckle`; wavelet codecs only); by default the model's own choice
    for the file's quality.

    Raises:
        CorruptStreamError: anything wrong with the file (before the output is created, as far
            as a full CRC walk can tell).
        ModelError: the model's weights differ from the encoder's.
    """
    t0 = time.perf_counter()
    with ContainerReader(src) as reader:
        header = reader.header
        check_header(header, str(src))
        sc, tl = header["scene"], header["tiling"]
        grid = TileGrid(
            sc["height"], sc["width"], tl["tile"], tl["halo"], tl["latent_halo"], tl["factor"]
        )
        kinds = check_layout(reader, grid, str(src))
        try:
            geo = GeoMetadata.from_dict(header["geo"])
            geo.validate()
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            raise CorruptStreamError(str(src), 0, f"bad geo metadata in the header: {e}") from None
        codec = load(header)
        if codec.weights_sha256 != header["model"]["weights_sha256"]:
            raise ModelError(
                f"{codec.path} is not the model {src} was encoded with (weights SHA-256 "
                f"{codec.weights_sha256[:12]}… vs {header['model']['weights_sha256'][:12]}…)"
            )
        model = codec.model
        device = next(model.parameters()).device
        dtype = np.dtype(header["input"]["dtype"])
        net_dtype = next(iter([*model.g_s.parameters()]), torch.empty(0)).dtype
        rate: dict[str, Any] = dict(header_rate(model, header["model"], codec, str(src)))
        norm = header["preprocessing"]["normalisation"]
        window = (float(norm["vmin_db"]), float(norm["vmax_db"]))
        rate.update(decode_kwargs(model, despeckle or Despeckle(), window, rate.get("quality")))
        h, w = grid.height, grid.width
        rows, cols = grid.shape
        lat_tile = grid.tile // grid.factor
        reach = -(-grid.latent_halo // lat_tile) if grid.latent_halo else 0
        tiles = iter(kinds["TILE"])
        masks = {}
        for entry in kinds["MASK"]:
            data = reader.read_chunk(entry)
            key = (int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little"))
            masks[key] = entry
        if len(masks) != rows * cols or any(
            not (0 <= r < rows and 0 <= c < cols) for r, c in masks
        ):
            raise CorruptStreamError(str(src), 0, "MASK chunks do not cover every tile once")
        latents: dict[int, torch.Tensor] = {}  # latent tile rows, full width: (C, h_r, W/f)
        try:
            with GeoTiffWriter(dst, h, w, dtype, geo) as out, torch.inference_mode():
                next_row = 0
                for r in range(rows):
                    while next_row < rows and next_row <= r + reach:
                        latents[next_row] = _decode_latent_row(
                            reader, tiles, grid, model, next_row, device, rate
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
                        core = grid.core(r, c)
                        ch, cw = min(core.h, h - core.y), min(core.w, w - core.x)
                        if ch <= 0 or cw <= 0:
                            continue
                        unit = x_hat[0, 0, crop.y : crop.y + ch, crop.x : crop.x + cw].cpu().numpy()
                        values = _from_units(unit, header, core.y, core.x)
                        mdata = reader.read_chunk(masks[(r, c)])
                        _, _, valid, raw = unpack_mask(mdata, (ch, cw), dtype)
                        values[~valid] = raw
                        out.write(values, core.y, core.x)
                    if advance is not None:
                        advance(1)
        except PayloadError as e:
            raise CorruptStreamError(str(src), 0, str(e)) from None
    size = src.stat().st_size
    return CodecStats(str(src), str(dst), h, w, size, size * 8 / (h * w), time.perf_counter() - t0)


def _decode_latent_row(
    reader: ContainerReader,
    tiles: Any,
    grid: TileGrid,
    model: Any,
    r: int,
    device: torch.device,
    rate: dict[str, Any],
) -> torch.Tensor:
    """Entropy-decode one row of tiles into a full-width latent strip (C, h_r, W/f)."""
    parts = []
    for c in range(grid.shape[1]):
        entry = next(tiles)
        row, col, groups, checksum = unpack_tile(reader.read_chunk(entry))
        if (row, col) != (r, c):
            raise PayloadError(f"tile ({row}, {col}) found where ({r}, {c}) belongs")
        lc = grid.latent_core(r, c)
        strings = [[g] for g in groups]
        kwargs: dict[str, Any] = {"checksums": [checksum]} if checksum is not None else {}
        kwargs.update(rate)
        try:
            y_hat = model.decompress_latent(strings, [lc.h, lc.w], **kwargs)
        except DeviceMismatchError:
            raise
        except (ValueError, RuntimeError, IndexError) as e:
            raise PayloadError(f"tile ({r}, {c}) does not decode: {e}") from None
        parts.append(y_hat[0].to(device))
    return torch.cat(parts, dim=2)
