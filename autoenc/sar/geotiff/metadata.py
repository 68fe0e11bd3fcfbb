# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""What a GeoTIFF band is besides its pixels: :class:`GeoMetadata`, the dtype table, I/O errors.

Sentinel-1 GRD measurement files are georeferenced by GCPs (no CRS/affine); terrain-corrected
products carry a CRS and an affine transform. :class:`GeoMetadata` holds whichever is present
as plain JSON-serialisable values, so datasets and compressed files can carry it without
pickling rasterio objects.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import rasterio
import rasterio.env
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine

try:  # GDAL's own error classes do not derive from RasterioError
    from rasterio._err import CPLE_BaseError as _CPLError
except ImportError:  # pragma: no cover - rasterio layout change
    _CPLError = RasterioError

#: GDAL's raster block cache (MB). The default, 5 % of RAM, grows with the scene: windows are
#: read once per pass, so a small cache that holds one row of tiles is all streaming needs.
GDAL_CACHE_MB = 32
if os.environ.get("GDAL_CACHEMAX") is None:  # a user's own setting wins
    rasterio.env.set_gdal_config("GDAL_CACHEMAX", GDAL_CACHE_MB)

#: Exceptions that mean "this file could not be read/written", whatever layer raised them.
IO_ERRORS: tuple[type[BaseException], ...] = (RasterioError, _CPLError, OSError)
POLARISATIONS = ("VV", "VH", "HH", "HV")
#: Band dtypes a scene may have to be coded and written back: the one table that the codec's
#: compressor, its header reader and :class:`GeoTiffWriter` share. Complex (SLC) bands must be
#: detected first; float16 has no GeoTIFF type in GDAL < 3.11.
RASTER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
                 "float32", "float64")  # fmt: skip
_GEO_KEYS = ("crs_wkt", "transform", "gcps", "gcps_crs_wkt", "tags", "band_tags", "nodata",
             "description", "units")  # fmt: skip
_GCP_NUMBERS = ("row", "col", "x", "y")
#: A GCP row of the compact form: ``[row, col, x, y, z]`` (id ``"i+1"``, info ``""``).
_GCP_ROW = ("row", "col", "x", "y", "z")
_EPSG_RE = re.compile(r"EPSG:([1-9][0-9]{0,5})")
_POL_RE = re.compile(r"(?<![a-z])(vv|vh|hh|hv)(?![a-z])", re.IGNORECASE)
TIFF_SUFFIXES = (".tif", ".tiff")


class SceneError(ValueError):
    """A scene file that cannot be opened or read; the message names the file."""


def io_message(e: BaseException) -> str:
    """A GDAL/rasterio error with its cause inline (rasterio says "See previous exception")."""
    text = str(e).replace(" See previous exception for details.", "").strip()
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}" if text else str(cause)
    return text or type(e).__name__


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    v = d[key]
    if v is not None and not isinstance(v, str):
        raise ValueError(f"{key} must be a string or null, got {type(v).__name__}")
    return v


def _str_dict(d: dict[str, Any], key: str) -> dict[str, str]:
    v = d[key]
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError(f"{key} must be an object of strings")
    return dict(v)


def _gcp(p: Any) -> dict[str, Any]:
    if not isinstance(p, dict) or not all(_finite(p.get(k)) for k in _GCP_NUMBERS):
        raise ValueError(f"a GCP needs finite numbers {', '.join(_GCP_NUMBERS)}")
    if set(p) - {*_GCP_NUMBERS, "z", "id", "info"}:
        raise ValueError(
            f"a GCP has unknown keys {sorted(set(p) - {*_GCP_NUMBERS, 'z', 'id', 'info'})}"
        )
    if p.get("z") is not None and not _finite(p["z"]):
        raise ValueError("a GCP's z must be a finite number or null")
    for k in ("id", "info"):
        if p.get(k) is not None and not isinstance(p[k], str):
            raise ValueError(f"a GCP's {k} must be a string or null")
    return dict(p)


def _nodata_from(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if not _finite(v):
        raise ValueError(f"nodata must be a number, 'nan', 'inf', '-inf' or null, got {v!r}")
    return float(v)


def _exact_epsg(wkt: str) -> int | None:
    """The EPSG code whose WKT is exactly ``wkt`` (so the code restores it), else None."""
    try:
        code = CRS.from_wkt(wkt).to_epsg()
        return code if code is not None and CRS.from_epsg(code).to_wkt() == wkt else None
    except (RasterioError, _CPLError, ValueError):
        return None


def check_nodata(dtype: str | np.dtype[Any], nodata: float | None) -> None:
    """Refuse a nodata value that ``dtype`` cannot hold (GDAL would fail late, obscurely).

    Raises:
        ValueError: naming both.
    """
    dt = np.dtype(dtype)
    if nodata is None:
        return
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if not (math.isfinite(nodata) and nodata == int(nodata) and info.min <= nodata <= info.max):
            raise ValueError(f"nodata {nodata!r} does not fit dtype {dt.name}")
    elif math.isfinite(nodata) and abs(nodata) > float(np.finfo(dt).max):
        raise ValueError(f"nodata {nodata!r} does not fit dtype {dt.name}")


@dataclass(frozen=True)
class GeoMetadata:
    """Georeferencing and descriptive metadata of one band, as JSON-friendly values.

    ``transform`` is the affine ``(a, b, c, d, e, f)``; each GCP is a dict with
    ``row, col, x, y, z, id, info``.
    """

    crs_wkt: str | None = None
    transform: tuple[float, ...] | None = None
    gcps: list[dict[str, Any]] = field(default_factory=list)
    gcps_crs_wkt: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: dict[str, str] = field(default_factory=dict)
    nodata: float | None = None
    description: str | None = None
    units: str | None = None

    @property
    def georef(self) -> str:
        """``"crs+transform"``, ``"gcps"`` or ``"none"``."""
        if self.crs_wkt and self.transform is not None:
            return "crs+transform"
        return "gcps" if self.gcps else "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (strict JSON: NaN/±Inf nodata becomes ``"nan"``/``"inf"``/``"-inf"``)."""
        d = asdict(self)
        if d["nodata"] is not None and not math.isfinite(d["nodata"]):
            d["nodata"] = str(d["nodata"])
        d["transform"] = list(self.transform) if self.transform is not None else None
        return d

    def to_compact(self) -> dict[str, Any]:
        """The small form of :meth:`to_dict` (``.aec`` headers); :meth:`from_compact` inverts it.

        Empty and null fields are left out; a CRS whose WKT is exactly what its EPSG code gives
        becomes ``"EPSG:<code>"``; GCPs numbered ``1..n`` without info become
        ``[row, col, x, y, z]`` rows.
        """
        d = {k: v for k, v in self.to_dict().items() if v is not None and v != {} and v != []}
        for key in ("crs_wkt", "gcps_crs_wkt"):
            if key in d and (code := _exact_epsg(d[key])) is not None:
                d[key] = f"EPSG:{code}"
        gcps = d.get("gcps", [])
        if gcps and all(
            set(p) == {*_GCP_ROW, "id", "info"} and p["id"] == str(i + 1) and p["info"] == ""
            for i, p in enumerate(gcps)
        ):
            d["gcps"] = [[p[k] for k in _GCP_ROW] for p in gcps]
        return d

    @classmethod
    def from_compact(cls, d: dict[str, Any]) -> GeoMetadata:
        """Inverse of :meth:`to_compact`, checking every field (``d`` may be untrusted).

        Raises:
            ValueError: an unknown key, a malformed EPSG code or GCP row, or what
                :meth:`from_dict` refuses.
        """
        if not isinstance(d, dict):
            raise ValueError(f"georeferencing must be an object, got {type(d).__name__}")
        if unknown := sorted(set(d) - set(_GEO_KEYS)):
            raise ValueError(f"georeferencing has unknown keys {unknown}")
        full: dict[str, Any] = {k: None for k in _GEO_KEYS}
        full.update(tags={}, band_tags={}, gcps=[])
        full.update(d)
        for key in ("crs_wkt", "gcps_crs_wkt"):
            v = full[key]
            if isinstance(v, str) and v.startswith("EPSG:"):
                if not (m := _EPSG_RE.fullmatch(v)):
                    raise ValueError(f"{key} {v[:20]!r} is not EPSG:<code>")
                try:
                    full[key] = str(CRS.from_epsg(int(m.group(1))).to_wkt())
                except (RasterioError, _CPLError, ValueError) as e:
                    raise ValueError(f"{key} {v}: {e}") from None
        gcps = full["gcps"]
        if isinstance(gcps, list) and gcps and all(isinstance(g, list) for g in gcps):
            if not all(len(g) == len(_GCP_ROW) for g in gcps):
                raise ValueError(f"a GCP row must be [{', '.join(_GCP_ROW)}]")
            full["gcps"] = [
                {**dict(zip(_GCP_ROW, g, strict=True)), "id": str(i + 1), "info": ""}
                for i, g in enumerate(gcps)
            ]
        return cls.from_dict(full)

    def validate(self) -> None:
        """Check that rasterio accepts the CRS, transform and GCPs (e.g. from an untrusted file).

        Raises:
            ValueError: naming the field that does not parse.
        """
        try:
            for wkt in (self.crs_wkt, self.gcps_crs_wkt):
                if wkt:
                    CRS.from_wkt(wkt)
            if self.transform is not None:
                Affine(*self.transform[:6])
            for p in self.gcps:
                GroundControlPoint(**p)
        except (TypeError, ValueError, RasterioError, _CPLError) as e:
            raise ValueError(f"invalid georeferencing: {e}") from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeoMetadata:
        """Inverse of :meth:`to_dict`, checking every field's type (``d`` may be untrusted).

        Raises:
            ValueError: a missing key or a value of the wrong type, naming it.
        """
        if not isinstance(d, dict):
            raise ValueError(f"georeferencing must be an object, got {type(d).__name__}")
        missing = [k for k in _GEO_KEYS if k not in d]
        if missing:
            raise ValueError(f"georeferencing lacks {', '.join(missing)}")
        t = d["transform"]
        if t is not None and not (isinstance(t, list) and len(t) == 6 and all(map(_finite, t))):
            raise ValueError("transform must be null or 6 finite numbers")
        gcps = d["gcps"]
        if not isinstance(gcps, list):
            raise ValueError("gcps must be a list")
        return cls(
            crs_wkt=_opt_str(d, "crs_wkt"),
            transform=None if t is None else tuple(float(v) for v in t),
            gcps=[_gcp(g) for g in gcps],
            gcps_crs_wkt=_opt_str(d, "gcps_crs_wkt"),
            tags=_str_dict(d, "tags"),
            band_tags=_str_dict(d, "band_tags"),
            nodata=_nodata_from(d["nodata"]),
            description=_opt_str(d, "description"),
            units=_opt_str(d, "units"),
        )
