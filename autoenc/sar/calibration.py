# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""How amplitude DN becomes intensity: raw DN², a constant ``A`` or a Sentinel-1 LUT.

σ⁰ = DN² / A² (ESA's S1 calibration note), so in dB the calibration is an additive term,
``-20·log10(A)``, and its inverse (decode) adds ``20·log10(A)`` back.

Invariants:
    * :class:`CalibrationLUT` values are finite and positive, lines sorted;
    * :meth:`CalibrationLUT.db_offset` is what :class:`~autoenc.sar.radiometry.BlockConverter`
      adds and the decoder subtracts (one formula, both directions).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class CalibrationLUT:
    """A Sentinel-1 calibration annotation: ``A`` on a grid of lines x pixels.

    σ⁰ = DN² / A², with ``A`` bilinearly interpolated (ESA's S1 calibration note).
    """

    lines: NDArray[np.float64]  # (K,)
    pixels: NDArray[np.float64]  # (M,)
    values: NDArray[np.float64]  # (K, M)
    name: str
    source: str

    @classmethod
    def from_xml(cls, path: str | Path, lut: str = "sigmaNought") -> CalibrationLUT:
        """Parse ``calibration-*.xml`` of a SAFE product (``lut``: sigmaNought|betaNought|gamma).

        Raises:
            ValueError: not a calibration annotation, or vectors of unequal length.
        """
        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as e:
            raise ValueError(f"cannot parse calibration annotation {path}: {e}") from e
        vectors = root.findall(".//calibrationVector")
        if not vectors:
            raise ValueError(f"{path} holds no <calibrationVector> (not a S1 calibration file)")
        lines, rows = [], []
        pixels: NDArray[np.float64] | None = None
        for v in vectors:
            px_el, val_el, line_el = v.find("pixel"), v.find(lut), v.find("line")
            if px_el is None or val_el is None or line_el is None:
                raise ValueError(f"{path}: a calibrationVector lacks <line>, <pixel> or <{lut}>")
            px = np.array(str(px_el.text).split(), dtype=np.float64)
            val = np.array(str(val_el.text).split(), dtype=np.float64)
            if px.shape != val.shape or px.size < 1:
                raise ValueError(
                    f"{path}: <pixel> and <{lut}> differ in length at line {line_el.text}"
                )
            if pixels is None:
                pixels = px
            elif not np.array_equal(px, pixels):
                val = np.interp(pixels, px, val)
            lines.append(float(str(line_el.text)))
            rows.append(val)
        assert pixels is not None
        order = np.argsort(lines, kind="stable")
        values = np.stack(rows)[order]
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"{path}: <{lut}> values must be finite and positive")
        return cls(np.asarray(lines)[order], pixels, values, lut, str(path))

    def db_offset(self, row: int, col: int, height: int, width: int) -> NDArray[np.float32]:
        """``-20·log10(A)`` over a window, shape (height, width): add it to ``20·log10(DN)``."""
        cols = np.arange(col, col + width, dtype=np.float64)
        rows = np.arange(row, row + height, dtype=np.float64)
        # Along pixels for every vector: (K, width); then along lines: (height, width).
        along = np.stack([np.interp(cols, self.pixels, v) for v in self.values])
        if along.shape[0] == 1:
            a = np.broadcast_to(along, (height, width))
        else:
            k = np.clip(np.searchsorted(self.lines, rows, side="right") - 1, 0, len(self.lines) - 2)
            t = np.clip((rows - self.lines[k]) / (self.lines[k + 1] - self.lines[k]), 0.0, 1.0)
            a = along[k] * (1.0 - t[:, None]) + along[k + 1] * t[:, None]
        return (-20.0 * np.log10(a)).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """How amplitude DN becomes intensity: raw DN², a constant ``A``, or a LUT."""

    constant: float | None = None
    lut: CalibrationLUT | None = None

    @property
    def calibrated(self) -> bool:
        """True when values are σ⁰ (or β⁰/γ⁰), False for raw DN²."""
        return self.constant is not None or self.lut is not None

    def describe(self) -> dict[str, Any]:
        """Manifest entry."""
        if self.lut is not None:
            return {"method": "lut", "lut": self.lut.name, "file": self.lut.source}
        if self.constant is not None:
            return {"method": "constant", "A": self.constant, "formula": "DN^2 / A^2"}
        return {"method": "none", "formula": "DN^2 (raw, uncalibrated)"}

    def units(self) -> str:
        """Units of the intensity this calibration yields."""
        if self.lut is not None:
            return {"sigmaNought": "sigma0", "betaNought": "beta0", "gamma": "gamma0"}.get(
                self.lut.name, self.lut.name
            )
        return "sigma0" if self.constant is not None else "raw DN^2"


def safe_calibration_file(scene: Path) -> Path | None:
    """The SAFE sidecar ``annotation/calibration/calibration-<stem>.xml`` of a measurement file."""
    cand = scene.parent.parent / "annotation" / "calibration" / f"calibration-{scene.stem}.xml"
    return cand if cand.is_file() else None


def calibration_for(path: Path, spec: str, lut: str = "sigmaNought") -> Calibration:
    """Resolve ``--calibration`` (auto | none | constant A | XML file) for one scene.

    Raises:
        ValueError: a non-positive constant or an unreadable calibration annotation.
    """
    c = spec.strip()
    if c in ("none", ""):
        return Calibration()
    if c == "auto":
        xml = safe_calibration_file(path)
        return Calibration(lut=CalibrationLUT.from_xml(xml, lut)) if xml else Calibration()
    try:
        a = float(c)
    except ValueError:
        return Calibration(lut=CalibrationLUT.from_xml(c, lut))
    if not (np.isfinite(a) and a > 0):
        raise ValueError(f"calibration constant must be finite and > 0, got {c!r}")
    return Calibration(constant=a)
