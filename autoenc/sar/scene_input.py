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


def explicit_calibration(spec: str) -> bool:
    """True for a ``--calibration`` that names a constant or an XML file (not auto or none)."""
    return spec.strip() not in ("auto", "none", "")


def _not_applied(kind: str, spec: str) -> dict[str, Any]:
    """Manifest entry of a non-amplitude scene: no calibration, and why an explicit one was not.

    ``{"method": "n/a"}``, plus ``requested`` and ``reason`` when ``spec`` is explicit.
    """
    if not explicit_calibration(spec):
        return {"method": "n/a"}
    reason = f"{kind} input: --calibration applies to amplitude DN"
    return {"method": "n/a", "requested": spec.strip(), "reason": reason}


def open_input(
    path: Path,
    band: int | str | None = None,
    input_kind: str = "auto",
    calibration: str = "auto",
    calibration_lut: str = "sigmaNought",
    noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB,
) -> tuple[SceneReader, BlockConverter, dict[str, Any]]:
    """Open a scene, decide its input kind and calibration, and describe it for a manifest.

    ``calibration`` applies to amplitude DN only: for an intensity or dB scene it is recorded
    as not applied (``{"method": "n/a", "requested": ..., "reason": ...}`` when it was a
    constant or an XML file), so one ``--calibration`` serves a folder mixing both.
    The caller owns (and must close) the returned reader.

    Raises:
        SceneError: unreadable file or missing band.
        ValueError: a bad calibration (non-positive constant, unreadable XML), or an ``auto``
            input kind the values cannot settle (the message says what was seen).
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
        # Applied to amplitude DN only; an explicit one is checked for every scene (constant > 0,
        # readable XML), so a typo fails on a float-only input too.
        amplitude = kind == "amplitude"
        given = (
            calibration_for(path, calibration, calibration_lut)
            if amplitude or explicit_calibration(calibration)
            else Calibration()
        )
        cal = given if amplitude else Calibration()
        applied = cal.describe() if amplitude else _not_applied(kind, calibration)
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
            "calibration": applied,
            "calibrated": cal.calibrated or not amplitude,
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
