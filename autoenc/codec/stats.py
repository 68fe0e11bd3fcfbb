# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""What one ``compress`` or ``decompress`` of a scene did (returned by the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CodecStats:
    """What one compress or decompress did.

    ``clipped_low`` / ``clipped_high``: valid pixels below / above the dB window that were
    clipped (lost; only with ``--clip``); ``exceptions``: those kept in the exception layer
    instead, which cost ``exception_bytes`` (EXCP chunks, framing included); ``offset_db``: the
    per-scene gain added to the scene's dB (:mod:`autoenc.sar.offset`) and why it was chosen.
    """

    source: str
    output: str
    height: int
    width: int
    file_bytes: int
    bpp: float
    seconds: float
    clipped_low: int = 0
    clipped_high: int = 0
    invalid: int = 0
    exceptions: int = 0
    exception_bytes: int = 0
    offset_db: float = 0.0
    offset_reason: str = ""
    calibration_note: str = ""  # an explicit --calibration that did not apply, and why

    @property
    def exception_bpp(self) -> float:
        """Bits per scene pixel spent on the exception layer."""
        return self.exception_bytes * 8 / max(self.height * self.width, 1)

    @property
    def mpix_per_s(self) -> float:
        """Scene megapixels per second."""
        return self.height * self.width / 1e6 / max(self.seconds, 1e-9)
