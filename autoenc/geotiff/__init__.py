# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""GeoTIFF scenes in windows: the only package that imports rasterio.

:mod:`~autoenc.geotiff.metadata` holds :class:`GeoMetadata` (georeferencing and descriptive
metadata as JSON-friendly values), the dtype table and the I/O errors;
:mod:`~autoenc.geotiff.reader` reads a band in windows; :mod:`~autoenc.geotiff.writer` writes
one back atomically, restoring the metadata.
"""

from autoenc.geotiff.metadata import (
    GDAL_CACHE_MB,
    POLARISATIONS,
    RASTER_DTYPES,
    TIFF_SUFFIXES,
    GeoMetadata,
    SceneError,
    check_nodata,
)
from autoenc.geotiff.reader import SceneReader, find_scenes, open_scene, polarisation_of
from autoenc.geotiff.writer import GeoTiffWriter, epsg_wkt

__all__ = [
    "GDAL_CACHE_MB",
    "POLARISATIONS",
    "RASTER_DTYPES",
    "TIFF_SUFFIXES",
    "GeoMetadata",
    "GeoTiffWriter",
    "SceneError",
    "SceneReader",
    "check_nodata",
    "epsg_wkt",
    "find_scenes",
    "open_scene",
    "polarisation_of",
]
