# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Reading one band of a GeoTIFF in windows (:class:`SceneReader`), and finding scenes."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from autoenc.sar.geotiff.metadata import (
    _POL_RE,
    IO_ERRORS,
    POLARISATIONS,
    TIFF_SUFFIXES,
    GeoMetadata,
    SceneError,
    io_message,
)


def blocks(height: int, width: int, rows: int, cols: int) -> list[tuple[int, int, int, int]]:
    """Row-major ``(row, col, h, w)`` windows tiling a ``height x width`` scene."""
    return [
        (r, c, min(rows, height - r), min(cols, width - c))
        for r in range(0, height, rows)
        for c in range(0, width, cols)
    ]


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
        except IO_ERRORS as e:
            raise SceneError(f"cannot open scene {self.path}: {io_message(e)}") from e
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
        # A geotransform is kept with or without a CRS; GCP-only and bare files report the
        # identity, which is no geotransform.
        has_transform = bool(ds.crs) or (not gcps and ds.transform != Affine.identity())
        self.geo = GeoMetadata(
            crs_wkt=ds.crs.to_wkt() if ds.crs else None,
            transform=tuple(ds.transform)[:6] if has_transform else None,
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
        except IO_ERRORS as e:
            raise SceneError(
                f"cannot read {self.path} rows {row}..{row + height} cols {col}..{col + width}: "
                f"{io_message(e)} (truncated or corrupt file?)"
            ) from e

    def sample(self, max_side: int = 512) -> NDArray[Any]:
        """A decimated (nearest-neighbour) view of the whole band, at most ``max_side`` a side."""
        h = min(self.height, max_side)
        w = min(self.width, max_side)
        try:
            return self._ds.read(self.band, out_shape=(h, w))
        except IO_ERRORS as e:
            raise SceneError(
                f"cannot read an overview of {self.path}: {io_message(e)} "
                "(truncated or corrupt file?)"
            ) from e


@contextlib.contextmanager
def open_scene(path: str | Path, band: int | str | None = None) -> Iterator[SceneReader]:
    """Open a :class:`SceneReader` that is closed when the ``with`` block ends."""
    reader = SceneReader(path, band)
    try:
        yield reader
    finally:
        reader.close()
