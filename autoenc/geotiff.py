# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""GeoTIFF scenes in windows: the only module that imports rasterio.

Sentinel-1 GRD measurement files are georeferenced by GCPs (no CRS/affine); terrain-corrected
products carry a CRS and an affine transform. :class:`GeoMetadata` holds whichever is present
as plain JSON-serialisable values, so datasets and compressed files can carry it without
pickling rasterio objects, and :class:`GeoTiffWriter` restores it.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.env
from numpy.typing import NDArray
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

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
_IO_ERRORS: tuple[type[BaseException], ...] = (RasterioError, _CPLError, OSError)
POLARISATIONS = ("VV", "VH", "HH", "HV")
_POL_RE = re.compile(r"(?<![a-z])(vv|vh|hh|hv)(?![a-z])", re.IGNORECASE)
TIFF_SUFFIXES = (".tif", ".tiff")


class SceneError(ValueError):
    """A scene file that cannot be opened or read; the message names the file."""


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
        """Plain dict (JSON-serialisable; NaN nodata becomes the string ``"nan"``)."""
        d = asdict(self)
        if d["nodata"] is not None and math.isnan(d["nodata"]):
            d["nodata"] = "nan"
        d["transform"] = list(self.transform) if self.transform is not None else None
        return d

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
        """Inverse of :meth:`to_dict`."""
        nodata = d.get("nodata")
        return cls(
            crs_wkt=d.get("crs_wkt"),
            transform=tuple(float(v) for v in d["transform"]) if d.get("transform") else None,
            gcps=[dict(g) for g in d.get("gcps", [])],
            gcps_crs_wkt=d.get("gcps_crs_wkt"),
            tags={str(k): str(v) for k, v in d.get("tags", {}).items()},
            band_tags={str(k): str(v) for k, v in d.get("band_tags", {}).items()},
            nodata=None if nodata is None else float(nodata),
            description=d.get("description"),
            units=d.get("units"),
        )


def find_scenes(paths: list[Path]) -> list[Path]:
    """Expand files and directories (searched recursively for ``*.tif``/``*.tiff``), sorted.

    Raises:
        FileNotFoundError: a path does not exist, or a directory holds no TIFF.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES
            )
            if not found:
                raise FileNotFoundError(f"no .tif/.tiff files under directory {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"scene not found: {p}")
    return sorted(dict.fromkeys(out))


def polarisation_of(path: Path, description: str | None, tags: dict[str, str]) -> str | None:
    """Polarisation from the band description, a tag, or an S1-style file name (``-vv-``)."""
    if description and description.upper() in POLARISATIONS:
        return description.upper()
    for key in ("POLARISATION", "POLARIZATION", "polarisation", "polarization"):
        if tags.get(key, "").upper() in POLARISATIONS:
            return tags[key].upper()
    m = _POL_RE.search(path.stem)
    return m.group(1).upper() if m else None


class SceneReader:
    """One band of a GeoTIFF, read in windows; use as a context manager."""

    def __init__(self, path: str | Path, band: int | str | None = None) -> None:
        """Open ``path`` and select ``band`` (1-based index or description such as ``"VV"``).

        ``None`` selects band 1 of a single-band file; multi-band files need an explicit band.

        Raises:
            SceneError: unreadable file, or a band that does not exist (the message lists them).
        """
        self.path = Path(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GCP-only GRD files
                self._ds = rasterio.open(self.path)
        except _IO_ERRORS as e:
            raise SceneError(f"cannot open scene {self.path}: {e}") from e
        try:
            self.band = self._select_band(band)
        except BaseException:
            self._ds.close()
            raise
        ds, b = self._ds, self.band
        self.height, self.width = int(ds.height), int(ds.width)
        self.count = int(ds.count)
        try:
            self.dtype = np.dtype(ds.dtypes[b - 1])
        except TypeError:
            self.close()
            raise SceneError(
                f"{self.path}: band {b} has dtype {ds.dtypes[b - 1]}, which is not supported "
                "(complex SLC data must be detected first)"
            ) from None
        tags = {str(k): str(v) for k, v in ds.tags().items()}
        nodata = ds.nodatavals[b - 1]
        gcps, gcp_crs = ds.gcps
        self.geo = GeoMetadata(
            crs_wkt=ds.crs.to_wkt() if ds.crs else None,
            transform=tuple(ds.transform)[:6] if ds.crs else None,
            gcps=[g.asdict() for g in gcps],
            gcps_crs_wkt=gcp_crs.to_wkt() if gcp_crs else None,
            tags=tags,
            band_tags={str(k): str(v) for k, v in ds.tags(b).items()},
            nodata=None if nodata is None else float(nodata),
            description=ds.descriptions[b - 1],
            units=ds.units[b - 1] or None,
        )
        self.polarisation = polarisation_of(self.path, self.geo.description, tags)

    def _select_band(self, band: int | str | None) -> int:
        ds = self._ds
        descs = [d or "" for d in ds.descriptions]
        listing = ", ".join(f"{i + 1}={d or '(no description)'}" for i, d in enumerate(descs))
        if band is None:
            if ds.count != 1:
                raise SceneError(
                    f"{self.path} has {ds.count} bands ({listing}); choose one with --band"
                )
            return 1
        if isinstance(band, int) or str(band).isdigit():
            b = int(band)
            if not 1 <= b <= ds.count:
                raise SceneError(f"{self.path}: band {b} out of range 1..{ds.count} ({listing})")
            return b
        matches = [i + 1 for i, d in enumerate(descs) if d.upper() == str(band).upper()]
        if len(matches) == 1:
            return matches[0]
        if not any(descs) and ds.count == 1:
            pol = polarisation_of(self.path, None, {})
            if pol == str(band).upper():
                return 1
        raise SceneError(f"{self.path}: no band described as {band!r} (bands: {listing})")

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file handle."""
        self._ds.close()

    def read(self, row: int, col: int, height: int, width: int) -> NDArray[Any]:
        """Read a window of the selected band in its stored dtype, shape (height, width).

        Raises:
            SceneError: truncated or corrupt data (the message names file and window).
        """
        try:
            return self._ds.read(self.band, window=Window(col, row, width, height))
        except _IO_ERRORS as e:
            cause = f" ({e.__cause__})" if e.__cause__ else ""
            raise SceneError(
                f"cannot read {self.path} rows {row}..{row + height} cols {col}..{col + width}: "
                f"{e}{cause} (truncated or corrupt file?)"
            ) from e

    def sample(self, max_side: int = 512) -> NDArray[Any]:
        """A decimated (nearest-neighbour) view of the whole band, at most ``max_side`` a side."""
        h = min(self.height, max_side)
        w = min(self.width, max_side)
        try:
            return self._ds.read(self.band, out_shape=(h, w))
        except _IO_ERRORS as e:
            raise SceneError(f"cannot read an overview of {self.path}: {e}") from e


class GeoTiffWriter:
    """Write one band in windows to a temporary file, renamed into place on success.

    An exception inside the ``with`` block (or a crash) never leaves a file at ``path``.
    """

    def __init__(
        self,
        path: str | Path,
        height: int,
        width: int,
        dtype: str | np.dtype[Any],
        geo: GeoMetadata | None = None,
        compress: str | None = None,
        tile: int | None = None,
    ) -> None:
        """Describe the output; nothing is created until the ``with`` block is entered."""
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.dtype = np.dtype(dtype)
        self.geo = geo or GeoMetadata()
        self.compress = compress
        self.tile = tile
        self._ds: Any = None
        self._tmp: Path | None = None

    def _profile(self) -> dict[str, Any]:
        g = self.geo
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "height": self.height,
            "width": self.width,
            "count": 1,
            "dtype": self.dtype.name,
            "BIGTIFF": "IF_SAFER",
        }
        if g.nodata is not None:
            profile["nodata"] = g.nodata
        if g.crs_wkt and g.transform is not None:
            profile["crs"] = CRS.from_wkt(g.crs_wkt)
            profile["transform"] = Affine(*g.transform[:6])
        if self.compress:
            profile["compress"] = self.compress
        if self.tile:
            profile.update(tiled=True, blockxsize=self.tile, blockysize=self.tile)
        return profile

    def __enter__(self) -> GeoTiffWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)  # GCPs are set below
                self._ds = rasterio.open(self._tmp, "w", **self._profile())
            g = self.geo
            if g.gcps:
                crs = CRS.from_wkt(g.gcps_crs_wkt) if g.gcps_crs_wkt else None
                self._ds.gcps = ([GroundControlPoint(**p) for p in g.gcps], crs)
            if g.tags:
                self._ds.update_tags(**g.tags)
            if g.band_tags:
                self._ds.update_tags(1, **g.band_tags)
            if g.description:
                self._ds.set_band_description(1, g.description)
            if g.units:
                self._ds.set_band_unit(1, g.units)
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, array: NDArray[Any], row: int, col: int = 0) -> None:
        """Write a (h, w) block at ``(row, col)``."""
        a = np.asarray(array)
        self._ds.write(a.astype(self.dtype, copy=False), 1, window=Window(col, row, *a.shape[::-1]))

    def _abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._ds is not None:
                self._ds.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            Path(f"{self._tmp}.aux.xml").unlink(missing_ok=True)

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None:
            self._abort()
            return
        try:
            self._ds.close()
            assert self._tmp is not None
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise


@contextlib.contextmanager
def open_scene(path: str | Path, band: int | str | None = None) -> Iterator[SceneReader]:
    """Open a :class:`SceneReader` that is closed when the ``with`` block ends."""
    reader = SceneReader(path, band)
    try:
        yield reader
    finally:
        reader.close()


def epsg_wkt(code: int) -> str:
    """WKT of an EPSG code (lets callers build :class:`GeoMetadata` without rasterio)."""
    return str(CRS.from_epsg(int(code)).to_wkt())
