# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The header of a scene ``.aec`` file, validated field by field into a :class:`SceneHeader`.

Nothing of a header is trusted before :func:`parse_header` has checked it: every field the
decoder uses has its type and range checked (strings are strings, numbers finite and inside
:data:`LIMITS`, lists of the right length), and the sizes it declares are checked against the
file's size, so a crafted header fails here with :class:`CorruptStreamError` naming the field,
before anything is allocated or decoded. The writer (``compress``) applies the same limits, so
whatever it writes, this reader accepts.

Format versions: version 1 files have no ``exceptions`` field (everything outside the dB window
was clipped); from version 2 it is required: ``{"mode": "keep", "step_db": s}`` (valid pixels
outside the window are coded in EXCP chunks, quantised to ``s`` dB, see
:mod:`autoenc.codec.exceptions`) or ``{"mode": "clip"}`` (today's clip, no EXCP chunks).

Invariants:
    * a :class:`SceneHeader` only holds values inside :data:`LIMITS`;
    * ``input.dtype`` is one of :data:`autoenc.sar.geotiff.RASTER_DTYPES`, the table shared by the
      compressor, this reader and the GeoTIFF writer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoenc.codec.container import CorruptStreamError
from autoenc.sar.calibration import CalibrationLUT
from autoenc.sar.geotiff import RASTER_DTYPES, GeoMetadata, check_nodata

KINDS = ("amplitude", "intensity", "db")


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
    at ``step_db`` (so it decodes within ``step_db / 2`` dB of ``max(input, noise floor)``);
    ``mode == "clip"``: no EXCP chunks, ``step_db`` is None (format version 1 files).
    """

    mode: str = "keep"
    step_db: float | None = 0.05

    def to_dict(self) -> dict[str, Any]:
        """The header field (``step_db`` only when keeping exceptions)."""
        if self.step_db is None:
            return {"mode": self.mode}
        return {"mode": self.mode, "step_db": self.step_db}


CLIP = ExceptionCoding("clip", None)


@dataclass(frozen=True)
class SceneHeader:
    """The validated header: what the decoder needs, typed (``raw`` keeps the JSON object)."""

    raw: dict[str, Any]
    height: int
    width: int
    tile: int
    halo: int
    latent_halo: int
    factor: int
    kind: str
    dtype: np.dtype[Any]
    window: tuple[float, float]
    constant: float | None
    lut: CalibrationLUT | None
    weights_sha256: str
    geo: GeoMetadata
    device: str
    exceptions: ExceptionCoding = CLIP


class _Bad(ValueError):
    pass


def _need(cond: bool, what: str, value: Any = None) -> None:
    if not cond:
        shown = "" if value is None else f" ({_show(value)})"
        raise _Bad(f"header field {what} is missing or invalid{shown}")


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _dict(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = d.get(key)
    _need(isinstance(v, dict), f"{where}{key}", v)
    return v  # type: ignore[return-value]


def _str(d: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    v = d.get(key)
    _need(isinstance(v, str) or (optional and v is None), f"{where}{key}", v)
    return v


def _int(d: dict[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    v = d.get(key)
    _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"{where}{key}", v)
    return int(v)  # type: ignore[arg-type]


def _num(v: Any, lo: float, hi: float) -> bool:
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and lo <= v <= hi
    )


def _float(d: dict[str, Any], key: str, lo: float, hi: float, where: str) -> float:
    v = d.get(key)
    _need(_num(v, lo, hi), f"{where}{key}", v)
    return float(v)  # type: ignore[arg-type]


def _numbers(v: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> np.ndarray:
    _need(isinstance(v, list) and len(v) >= 1 and all(_num(x, lo, hi) for x in v), what)
    return np.asarray(v, dtype=np.float64)


def _lut(t: Any) -> CalibrationLUT:
    _need(isinstance(t, dict), "input.calibration.lut")
    lines = _numbers(t.get("lines"), "input.calibration.lut.lines")
    pixels = _numbers(t.get("pixels"), "input.calibration.lut.pixels")
    _need(bool(np.all(np.diff(lines) > 0)), "input.calibration.lut.lines (not increasing)")
    _need(bool(np.all(np.diff(pixels) > 0)), "input.calibration.lut.pixels (not increasing)")
    rows = t.get("values")
    _need(isinstance(rows, list) and len(rows) == len(lines), "input.calibration.lut.values")
    _need(len(lines) * len(pixels) <= LIMITS.lut_size, "input.calibration.lut (too large)")
    lo, hi = LIMITS.calibration
    values = np.stack([_numbers(r, "input.calibration.lut.values", lo, hi) for r in rows])
    _need(values.shape == (len(lines), len(pixels)), "input.calibration.lut.values (shape)")
    name = t.get("name")
    _need(isinstance(name, str), "input.calibration.lut.name", name)
    return CalibrationLUT(lines, pixels, values, str(name), "header")


def parse_header(h: dict[str, Any], path: str, file_size: int, version: int) -> SceneHeader:
    """Validate a scene header of a format-``version`` file of ``file_size`` bytes.

    Raises:
        CorruptStreamError: a missing, mistyped or out-of-range field (named).
    """
    try:
        return _parse(h, file_size, version)
    except _Bad as e:
        raise CorruptStreamError(path, 0, str(e)) from None


def _exceptions(h: dict[str, Any], version: int) -> ExceptionCoding:
    if version < 2:  # version 1 clipped everything outside the window
        _need("exceptions" not in h, "exceptions (not in a version 1 file)", h.get("exceptions"))
        return CLIP
    exc = _dict(h, "exceptions", "")
    mode = exc.get("mode")
    _need(mode in EXCEPTION_MODES, "exceptions.mode", mode)
    if mode == "clip":
        _need(set(exc) == {"mode"}, "exceptions (clip has no other field)", exc)
        return CLIP
    _need(set(exc) == {"mode", "step_db"}, "exceptions (keys)", exc)
    return ExceptionCoding("keep", _float(exc, "step_db", *LIMITS.step_db, "exceptions."))


def _parse(h: dict[str, Any], file_size: int, version: int) -> SceneHeader:
    L = LIMITS
    _need(h.get("kind") == "autoenc-scene", "kind", h.get("kind"))
    _str(h, "autoenc", "")
    device = _str(h, "device", "")
    assert device is not None
    _need(0 < len(device) <= 16, "device", device)

    model = _dict(h, "model", "")
    sha = _str(model, "weights_sha256", "model.")
    assert sha is not None
    _need(len(sha) == 64 and all(c in "0123456789abcdef" for c in sha), "model.weights_sha256")
    spec = _dict(model, "spec", "model.")
    _str(spec, "class_path", "model.spec.")
    _dict(spec, "init_args", "model.spec.")
    if "checkpoint" in model:
        _str(model, "checkpoint", "model.")
    for key in ("quality", "step"):  # variable-rate models; checked against the model later
        if key in model:
            _need(_num(model[key], -(2**31), 2**31), f"model.{key}", model[key])

    pre = _dict(h, "preprocessing", "")
    norm = _dict(pre, "normalisation", "preprocessing.")
    where = "preprocessing.normalisation."
    lo = _float(norm, "vmin_db", -L.db, L.db, where)
    hi = _float(norm, "vmax_db", -L.db, L.db, where)
    _float(norm, "noise_floor_db", -L.db, L.db, where)
    _need(lo < hi, "preprocessing.normalisation (vmin_db < vmax_db)", [lo, hi])
    _float(pre, "fill_unit", 0.0, 1.0, "preprocessing.")
    exceptions = _exceptions(h, version)

    inp = _dict(h, "input", "")
    kind = inp.get("kind")
    _need(kind in KINDS, "input.kind", kind)
    dtype_name = inp.get("dtype")
    _need(dtype_name in RASTER_DTYPES, "input.dtype", dtype_name)
    dtype = np.dtype(str(dtype_name))
    _str(inp, "units", "input.")
    _int(inp, "band", 1, 1 << 16, "input.")
    _str(inp, "polarisation", "input.", optional=True)
    cal = _dict(inp, "calibration", "input.")
    constant = cal.get("constant")
    _need(constant is None or _num(constant, *L.calibration), "input.calibration.constant",
          constant)  # fmt: skip
    lut = _lut(cal["lut"]) if cal.get("lut") is not None else None
    nodata = inp.get("nodata")
    _need(nodata is None or _num(nodata, -math.inf, math.inf) or nodata in ("nan", "inf", "-inf"),
          "input.nodata", nodata)  # fmt: skip

    scene = _dict(h, "scene", "")
    height = _int(scene, "height", 1, L.scene_side, "scene.")
    width = _int(scene, "width", 1, L.scene_side, "scene.")
    _str(scene, "source", "scene.")
    if height * width > L.pixels_per_byte * file_size:
        raise _Bad(f"header field scene declares {height}x{width} px, more than a file of "
                   f"{file_size} bytes can describe")  # fmt: skip

    tiling = _dict(h, "tiling", "")
    f = _int(tiling, "factor", 1, L.factor, "tiling.")
    tile = _int(tiling, "tile", f, L.tile, "tiling.")
    _need(tile % f == 0, f"tiling.tile (not a multiple of the factor {f})", tile)
    halo = _int(tiling, "halo", 0, L.tile, "tiling.")
    _need(halo % f == 0, f"tiling.halo (not a multiple of the factor {f})", halo)
    latent_halo = _int(tiling, "latent_halo", 0, L.tile // f, "tiling.")

    try:
        geo = GeoMetadata.from_dict(_dict(h, "geo", ""))
        geo.validate()
        check_nodata(dtype, geo.nodata)
    except ValueError as e:
        raise _Bad(f"header field geo: {e}") from None
    return SceneHeader(
        raw=h, height=height, width=width, tile=tile, halo=halo, latent_halo=latent_halo,
        factor=f, kind=str(kind), dtype=dtype, window=(lo, hi),
        constant=None if constant is None else float(constant), lut=lut, weights_sha256=sha,
        geo=geo, device=device, exceptions=exceptions,
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
