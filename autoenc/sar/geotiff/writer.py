# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Writing one band of a GeoTIFF in windows, atomically (:class:`GeoTiffWriter`)."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from autoenc.atomic import commit, make_temp
from autoenc.sar.geotiff.metadata import (
    IO_ERRORS,
    RASTER_DTYPES,
    GeoMetadata,
    SceneError,
    check_nodata,
    io_message,
)


class GeoTiffWriter:
    """Write one band in windows to a temporary file, renamed into place on success.

    An exception inside the ``with`` block (or a crash) never leaves a file at ``path``;
    ``overwrite=False`` never replaces an existing one (:func:`autoenc.atomic.commit`).
    The dtype must be one of :data:`RASTER_DTYPES`.
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
        overwrite: bool = True,
    ) -> None:
        """Describe the output; nothing is created until the ``with`` block is entered.

        Raises:
            ValueError: a dtype outside :data:`RASTER_DTYPES`, a nodata value it cannot hold,
                or a description/units that is not a string.
        """
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in RASTER_DTYPES:
            raise ValueError(
                f"cannot write {self.path}: dtype {self.dtype.name} is not one of "
                f"{', '.join(RASTER_DTYPES)}"
            )
        self.geo = geo or GeoMetadata()
        check_nodata(self.dtype, self.geo.nodata)
        for name in ("description", "units"):
            if not isinstance(getattr(self.geo, name), str | None):
                raise ValueError(f"cannot write {self.path}: band {name} must be a string")
        self.overwrite = overwrite
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
        if g.crs_wkt:
            profile["crs"] = CRS.from_wkt(g.crs_wkt)
        if g.transform is not None:  # with or without a CRS
            profile["transform"] = Affine(*g.transform[:6])
        if self.compress:
            profile["compress"] = self.compress
        if self.tile:
            profile.update(tiled=True, blockxsize=self.tile, blockysize=self.tile)
        return profile

    def __enter__(self) -> GeoTiffWriter:
        self._tmp = make_temp(self.path)
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
        except IO_ERRORS as e:
            self._abort()
            raise SceneError(f"cannot write {self.path}: {io_message(e)}") from e
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
            Path(f"{self._tmp}.aux.xml").unlink(missing_ok=True)  # nothing is kept beside it
            commit(self._tmp, self.path, self.overwrite)
        except IO_ERRORS as e:
            self._abort()
            if isinstance(e, OSError) and not isinstance(e, RasterioError):
                raise
            raise SceneError(f"cannot write {self.path}: {io_message(e)}") from e
        except BaseException:
            self._abort()
            raise
        self._tmp = None


def epsg_wkt(code: int) -> str:
    """WKT of an EPSG code (lets callers build :class:`GeoMetadata` without rasterio)."""
    return str(CRS.from_epsg(int(code)).to_wkt())
