# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The header of a scene ``.aec`` file: the typed :class:`SceneHeader`, built, checked, stored.

``compress`` builds a :class:`SceneHeader` and stores :meth:`SceneHeader.to_dict` (deflated by
the container from format version 3); the decoder gets one back from :func:`parse_header`,
which trusts nothing: every field the decoder uses has its type and range checked (strings are
strings, numbers finite and inside :data:`LIMITS`, lists of the right length) and the sizes it
declares are checked against the file's size, so a crafted header fails with
:class:`CorruptStreamError` naming the field before anything is allocated or decoded. The
writer runs the same parser on what it is about to write, so whatever it writes, the reader
accepts.

Format versions (what the header holds; see :mod:`autoenc.codec.container` for the bytes):

* 1: no ``exceptions`` field (everything outside the dB window was clipped);
* 2: ``exceptions``: ``{"mode": "keep", "step_db": s}`` (valid pixels outside the window are
  in EXCP chunks, quantised to ``s`` dB, :mod:`autoenc.codec.exceptions`) or ``{"mode":
  "clip"}``;
* 3: ``input.offset_db`` (the per-scene gain, :mod:`autoenc.sar.offset`) is required; the
  model's ``spec`` (the weights hash identifies the model) and ``input.nodata`` (``geo``
  holds it) are left out, and ``geo`` is in :meth:`GeoMetadata.to_compact` form.

Invariants:
    * a :class:`SceneHeader` only holds values inside :data:`LIMITS`;
    * ``parse_header(h.to_dict(), ..., FORMAT_VERSION).to_dict() == h.to_dict()``;
    * ``input.dtype`` is one of :data:`autoenc.sar.geotiff.RASTER_DTYPES`, the table shared by
      the compressor, this reader and the GeoTIFF writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from autoenc.codec.container import CorruptStreamError
from autoenc.codec.fields import (
    FieldError,
    get_dict,
    get_float,
    get_int,
    get_str,
    is_number,
    need,
    numbers,
)
from autoenc.sar.calibration import Calibration, CalibrationLUT
from autoenc.sar.geotiff import RASTER_DTYPES, GeoMetadata, check_nodata
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.offset import OFFSET_LIMIT_DB, DbOffset
from autoenc.sar.radiometry import INPUT_KINDS, BlockConverter
from autoenc.tiling import TileGrid


@dataclass(frozen=True)
class Limits:
    """What a header may declare (and what ``compress`` may write)."""

    scene_side: int = 1 << 20  # px, height and width
    tile: int = 8192  # px, tile core side
    factor: int = 1024  # model downsampling factor
    db: float = 300.0  # |dB| of the window and noise floor
    calibration: tuple[float, float] = (1e-6, 1e9)  # calibration constant / LUT values
    lut_size: int = 1 << 20  # lines x pixels of a calibration LUT
    # zlib never compresses more than 1032:1, so every pixel costs at least 1/8256 byte of MASK
    # chunk: a header can declare no more pixels than its file could describe.
    pixels_per_byte: int = 8 * 1032
    step_db: tuple[float, float] = (0.001, 1.0)  # exception quantisation step, dB


LIMITS = Limits()

#: How a file treats valid pixels outside the dB window: coded beside the stream, or clipped.
EXCEPTION_MODES = ("keep", "clip")


@dataclass(frozen=True)
class ExceptionCoding:
    """The header's ``exceptions`` record.

    ``mode == "keep"``: every valid pixel outside the window is coded in its tile's EXCP chunk
    at ``step_db`` (so it decodes within ``step_db / 2`` dB of its input, down to
    ``-LIMITS.db``; format version 2 files stored ``max(input, noise floor)``);
    ``mode == "clip"``: no EXCP chunks, ``step_db`` is None (format version 1 files).
    """

    mode: str = "keep"
    step_db: float | None = 0.05
    #: Version 3: values are coded from these window edges (the header's dB window; not
    #: stored in the ``exceptions`` field); None: absolute codes (version 2).
    edges: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The header field (``step_db`` only when keeping exceptions)."""
        if self.step_db is None:
            return {"mode": self.mode}
        return {"mode": self.mode, "step_db": self.step_db}


CLIP = ExceptionCoding("clip", None)


@dataclass(frozen=True)
class ModelRecord:
    """Which model coded the file: its weights' hash, where it was, its operating point."""

    weights_sha256: str
    checkpoint: str | None = None  # file name, looked for next to the .aec
    quality: int | None = None  # variable-rate models: the quality and its step
    step: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The header's ``model`` record."""
        d: dict[str, Any] = {"weights_sha256": self.weights_sha256}
        if self.checkpoint is not None:
            d["checkpoint"] = self.checkpoint
        if self.quality is not None:
            d.update(quality=self.quality, step=self.step)
        return d


@dataclass(frozen=True)
class InputRecord:
    """What the scene's band held and how it became the model's dB (undone on decode)."""

    kind: str  # one of INPUT_KINDS
    dtype: np.dtype[Any]
    units: str
    band: int
    polarisation: str | None
    calibration: Calibration = Calibration()
    offset: DbOffset = DbOffset()

    @cached_property
    def converter(self) -> BlockConverter:
        """The scene's dB conversion (its :meth:`~BlockConverter.from_db` is the decoder's)."""
        return BlockConverter(self.kind, None, -LIMITS.db, self.calibration)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """The header's ``input`` record (format version 3)."""
        cal: dict[str, Any] = {"constant": self.calibration.constant}
        if (lut := self.calibration.lut) is not None:
            cal["lut"] = {"lines": lut.lines.tolist(), "pixels": lut.pixels.tolist(),
                          "values": lut.values.tolist(), "name": lut.name}  # fmt: skip
        return {"kind": self.kind, "dtype": self.dtype.name, "units": self.units,
                "band": self.band, "polarisation": self.polarisation, "calibration": cal,
                "offset_db": self.offset.offset_db}  # fmt: skip


@dataclass(frozen=True)
class SceneHeader:
    """A validated scene header (model identity, preprocessing, input, scene, tiling, geo)."""

    autoenc: str
    device: str  # torch device type the file was encoded on
    model: ModelRecord
    normalisation: Normalisation
    fill_unit: float
    exceptions: ExceptionCoding
    input: InputRecord
    grid: TileGrid  # scene size and tiling
    source: str  # the scene's file name
    geo: GeoMetadata

    @property
    def window(self) -> tuple[float, float]:
        """The model's dB window."""
        return self.normalisation.window

    def to_dict(self) -> dict[str, Any]:
        """The header object of a format-version-3 file."""
        g = self.grid
        return {
            "kind": "autoenc-scene",
            "autoenc": self.autoenc,
            "device": self.device,
            "model": self.model.to_dict(),
            "preprocessing": {
                "normalisation": self.normalisation.to_dict(),
                "fill_unit": self.fill_unit,
            },  # fmt: skip
            "exceptions": self.exceptions.to_dict(),
            "input": self.input.to_dict(),
            "scene": {"height": g.height, "width": g.width, "source": self.source},
            "tiling": {
                "tile": g.tile,
                "halo": g.halo,
                "latent_halo": g.latent_halo,
                "factor": g.factor,
            },  # fmt: skip
            "geo": self.geo.to_compact(),
        }


def parse_header(h: dict[str, Any], path: str, file_size: int, version: int) -> SceneHeader:
    """Validate the header of a format-``version`` file of ``file_size`` bytes.

    Raises:
        CorruptStreamError: a missing, mistyped or out-of-range field (named).
    """
    try:
        return _parse(h, file_size, version)
    except FieldError as e:
        raise CorruptStreamError(path, 0, str(e)) from None


def _lut(t: Any) -> CalibrationLUT:
    need(isinstance(t, dict), "input.calibration.lut")
    lines = numbers(t.get("lines"), "input.calibration.lut.lines")
    pixels = numbers(t.get("pixels"), "input.calibration.lut.pixels")
    need(bool(np.all(np.diff(lines) > 0)), "input.calibration.lut.lines (not increasing)")
    need(bool(np.all(np.diff(pixels) > 0)), "input.calibration.lut.pixels (not increasing)")
    rows = t.get("values")
    need(isinstance(rows, list) and len(rows) == len(lines), "input.calibration.lut.values")
    need(len(lines) * len(pixels) <= LIMITS.lut_size, "input.calibration.lut (too large)")
    lo, hi = LIMITS.calibration
    values = np.stack([numbers(r, "input.calibration.lut.values", lo, hi) for r in rows])
    need(values.shape == (len(lines), len(pixels)), "input.calibration.lut.values (shape)")
    name = t.get("name")
    need(isinstance(name, str), "input.calibration.lut.name", name)
    return CalibrationLUT(lines, pixels, values, str(name), "header")


def _exceptions(h: dict[str, Any], version: int) -> ExceptionCoding:
    if version < 2:  # version 1 clipped everything outside the window
        need("exceptions" not in h, "exceptions (not in a version 1 file)", h.get("exceptions"))
        return CLIP
    exc = get_dict(h, "exceptions", "")
    mode = exc.get("mode")
    need(mode in EXCEPTION_MODES, "exceptions.mode", mode)
    if mode == "clip":
        need(set(exc) == {"mode"}, "exceptions (clip has no other field)", exc)
        return CLIP
    need(set(exc) == {"mode", "step_db"}, "exceptions (keys)", exc)
    return ExceptionCoding("keep", get_float(exc, "step_db", *LIMITS.step_db, "exceptions."))


def _model(h: dict[str, Any], version: int) -> ModelRecord:
    model = get_dict(h, "model", "")
    sha = get_str(model, "weights_sha256", "model.")
    assert sha is not None
    need(len(sha) == 64 and all(c in "0123456789abcdef" for c in sha), "model.weights_sha256")
    if version < 3 or "spec" in model:  # informational; version 3 leaves it out
        spec = get_dict(model, "spec", "model.")
        get_str(spec, "class_path", "model.spec.")
        get_dict(spec, "init_args", "model.spec.")
    checkpoint = get_str(model, "checkpoint", "model.", optional=True)
    quality = step = None
    if "quality" in model:  # variable-rate models; checked against the model on decode
        quality = get_int(model, "quality", -(2**31), 2**31, "model.")
        step = get_float(model, "step", -math.inf, math.inf, "model.")
    return ModelRecord(sha, checkpoint, quality, step)


def _input(h: dict[str, Any], version: int) -> InputRecord:
    inp = get_dict(h, "input", "")
    kind = inp.get("kind")
    need(kind in INPUT_KINDS, "input.kind", kind)
    dtype_name = inp.get("dtype")
    need(dtype_name in RASTER_DTYPES, "input.dtype", dtype_name)
    units = get_str(inp, "units", "input.")
    band = get_int(inp, "band", 1, 1 << 16, "input.")
    pol = get_str(inp, "polarisation", "input.", optional=True)
    cal = get_dict(inp, "calibration", "input.")
    constant = cal.get("constant")
    need(constant is None or is_number(constant, *LIMITS.calibration),
         "input.calibration.constant", constant)  # fmt: skip
    lut = _lut(cal["lut"]) if cal.get("lut") is not None else None
    offset = DbOffset()
    if version >= 3:  # the per-scene gain; earlier files had none, and kept nodata here
        db = get_float(inp, "offset_db", -OFFSET_LIMIT_DB, OFFSET_LIMIT_DB, "input.")
        offset = DbOffset(db, "header")
    else:
        need("offset_db" not in inp, "input.offset_db (not before version 3)", inp.get("offset_db"))
        nodata = inp.get("nodata")
        need(nodata is None or is_number(nodata) or nodata in ("nan", "inf", "-inf"),
             "input.nodata", nodata)  # fmt: skip
    calibration = Calibration(None if constant is None else float(constant), lut)
    return InputRecord(str(kind), np.dtype(str(dtype_name)), str(units), band, pol,
                       calibration, offset)  # fmt: skip


def _parse(h: dict[str, Any], file_size: int, version: int) -> SceneHeader:
    L = LIMITS
    need(h.get("kind") == "autoenc-scene", "kind", h.get("kind"))
    autoenc = get_str(h, "autoenc", "")
    device = get_str(h, "device", "")
    assert autoenc is not None and device is not None
    need(0 < len(device) <= 16, "device", device)
    model = _model(h, version)

    pre = get_dict(h, "preprocessing", "")
    norm = get_dict(pre, "normalisation", "preprocessing.")
    where = "preprocessing.normalisation."
    lo = get_float(norm, "vmin_db", -L.db, L.db, where)
    hi = get_float(norm, "vmax_db", -L.db, L.db, where)
    floor = get_float(norm, "noise_floor_db", -L.db, L.db, where)
    need(lo < hi, "preprocessing.normalisation (vmin_db < vmax_db)", [lo, hi])
    fill = get_float(pre, "fill_unit", 0.0, 1.0, "preprocessing.")
    exceptions = _exceptions(h, version)
    if version >= 3 and exceptions.step_db is not None:
        exceptions = ExceptionCoding("keep", exceptions.step_db, (lo, hi))
    inp = _input(h, version)

    scene = get_dict(h, "scene", "")
    height = get_int(scene, "height", 1, L.scene_side, "scene.")
    width = get_int(scene, "width", 1, L.scene_side, "scene.")
    source = get_str(scene, "source", "scene.")
    if height * width > L.pixels_per_byte * file_size:
        raise FieldError(f"header field scene declares {height}x{width} px, more than a file "
                         f"of {file_size} bytes can describe")  # fmt: skip

    tiling = get_dict(h, "tiling", "")
    f = get_int(tiling, "factor", 1, L.factor, "tiling.")
    tile = get_int(tiling, "tile", f, L.tile, "tiling.")
    need(tile % f == 0, f"tiling.tile (not a multiple of the factor {f})", tile)
    halo = get_int(tiling, "halo", 0, L.tile, "tiling.")
    need(halo % f == 0, f"tiling.halo (not a multiple of the factor {f})", halo)
    latent_halo = get_int(tiling, "latent_halo", 0, L.tile // f, "tiling.")

    try:
        g = get_dict(h, "geo", "")
        geo = GeoMetadata.from_compact(g) if version >= 3 else GeoMetadata.from_dict(g)
        geo.validate()
        check_nodata(inp.dtype, geo.nodata)
    except FieldError:
        raise
    except ValueError as e:
        raise FieldError(f"header field geo: {e}") from None
    return SceneHeader(
        autoenc=autoenc, device=device, model=model,
        normalisation=Normalisation(lo, hi, floor), fill_unit=fill, exceptions=exceptions,
        input=inp, grid=TileGrid(height, width, tile, halo, latent_halo, f),
        source=str(source), geo=geo,
    )  # fmt: skip


def check_tiling(height: int, width: int, tile: int, halo: int, latent_halo: int, factor: int,
                 source: str) -> None:  # fmt: skip
    """The writer's side of :data:`LIMITS`: refuse what the reader would refuse.

    Raises:
        ValueError: naming the scene size or option and its limit.
    """
    L = LIMITS
    if max(height, width) > L.scene_side:
        raise ValueError(f"{source}: {height}x{width} px is larger than {L.scene_side} a side")
    if factor > L.factor:
        raise ValueError(f"{source}: the model's downsampling factor {factor} exceeds {L.factor}")
    if not factor <= tile <= L.tile:
        raise ValueError(f"{source}: --tile {tile} must be in {factor}..{L.tile}")
    if not 0 <= halo <= L.tile:
        raise ValueError(f"{source}: --halo {halo} must be in 0..{L.tile}")
    if not 0 <= latent_halo <= L.tile // factor:
        raise ValueError(f"{source}: --latent-halo {latent_halo} must be in 0..{L.tile // factor}")


def check_step(step_db: float, source: str) -> None:
    """The writer's side of :data:`LIMITS.step_db <Limits>`.

    Raises:
        ValueError: naming the option and its range.
    """
    lo, hi = LIMITS.step_db
    if not (math.isfinite(step_db) and lo <= step_db <= hi):
        raise ValueError(f"{source}: --exception-step {step_db} dB must be in {lo}..{hi} dB")
