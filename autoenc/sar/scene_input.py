# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Open a scene band as model input: input kind, calibration and a manifest description.

Shared by ``autoenc prepare`` and the codec, so both apply the same preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoenc.sar.calibration import Calibration, calibration_for
from autoenc.sar.geotiff import SceneReader
from autoenc.sar.radiometry import DEFAULT_NOISE_FLOOR_DB, BlockConverter, detect_input_kind


def open_input(
    path: Path,
    band: int | str | None = None,
    input_kind: str = "auto",
    calibration: str = "auto",
    calibration_lut: str = "sigmaNought",
    noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB,
) -> tuple[SceneReader, BlockConverter, dict[str, Any]]:
    """Open a scene, decide its input kind and calibration, and describe it for a manifest.

    The caller owns (and must close) the returned reader.

    Raises:
        SceneError: unreadable file or missing band.
        ValueError: bad calibration, a calibration given for a non-amplitude scene, or an
            ``auto`` input kind the values cannot settle (the message says what was seen).
    """
    reader = SceneReader(path, band)
    try:
        g = reader.geo
        sample = reader.sample() if input_kind == "auto" else None
        if input_kind == "auto":
            try:
                kind, why = detect_input_kind(
                    reader.dtype, g.units, g.description, g.tags, sample, g.nodata
                )
            except ValueError as e:  # name the scene: the refusal is about its values
                raise ValueError(f"{path}: {e}") from None
        else:
            kind, why = input_kind, "given by --input-kind"  # type: ignore[assignment]
        cal = (
            calibration_for(path, calibration, calibration_lut)
            if kind == "amplitude"
            else Calibration()
        )
        if kind != "amplitude" and calibration not in ("auto", "none"):
            raise ValueError(f"{path}: --calibration applies to amplitude DN, but this is {kind}")
        units = {"amplitude": cal.units(), "intensity": "linear intensity", "db": "dB"}[kind]
        stat = path.stat()
        info = {
            "source": {
                "path": str(path.resolve()),
                "bytes": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            },
            "band": reader.band,
            "band_description": g.description,
            "polarisation": reader.polarisation or "unknown",
            "dtype": reader.dtype.name,
            "input_kind": kind,
            "input_kind_reason": why,
            "calibration": cal.describe() if kind == "amplitude" else {"method": "n/a"},
            "calibrated": cal.calibrated or kind != "amplitude",
            "units": units,
            "nodata": g.to_dict()["nodata"],
            "georef": g.georef,
            "crs_wkt": g.crs_wkt,
            "transform": list(g.transform) if g.transform else None,
            "gcps": len(g.gcps),
            "shape": [reader.height, reader.width],
        }
        return reader, BlockConverter(kind, g.nodata, noise_floor_db, cal), info
    except BaseException:
        reader.close()
        raise
