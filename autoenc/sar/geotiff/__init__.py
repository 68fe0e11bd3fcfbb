# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""GeoTIFF scenes in windows: the only package that imports rasterio.

:mod:`~autoenc.sar.geotiff.metadata` holds :class:`GeoMetadata` (georeferencing and descriptive
metadata as JSON-friendly values), the dtype table and the I/O errors;
:mod:`~autoenc.sar.geotiff.reader` reads a band in windows (:func:`blocks` tiles it);
:mod:`~autoenc.sar.geotiff.writer` writes
one back atomically, restoring the metadata.
"""

from autoenc.sar.geotiff.metadata import (
    GDAL_CACHE_MB,
    POLARISATIONS,
    RASTER_DTYPES,
    TIFF_SUFFIXES,
    GeoMetadata,
    SceneError,
    check_nodata,
)
from autoenc.sar.geotiff.reader import SceneReader, blocks, find_scenes, open_scene, polarisation_of
from autoenc.sar.geotiff.writer import GeoTiffWriter, epsg_wkt

__all__ = [
    "GDAL_CACHE_MB",
    "POLARISATIONS",
    "RASTER_DTYPES",
    "TIFF_SUFFIXES",
    "GeoMetadata",
    "GeoTiffWriter",
    "SceneError",
    "SceneReader",
    "blocks",
    "check_nodata",
    "epsg_wkt",
    "find_scenes",
    "open_scene",
    "polarisation_of",
]
