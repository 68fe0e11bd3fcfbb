# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""JPEG XL and HTJ2K baselines through imagecodecs, the only module that imports it.

imagecodecs is imported lazily, on use, so ``autoenc.baselines`` works without it and
``available()`` answers False instead of raising. Neither library takes a bit-rate target:
JPEG XL takes a perceptual ``distance``, HTJ2K a quantisation step, so both are searched in
log space (see :func:`autoenc.baselines.base.search_rate`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from autoenc.baselines.base import ClassicalCodec, IntImage, SearchSpace
from autoenc.baselines.jpeg2000 import J2K_SIGNATURE

#: Start of a naked JPEG XL codestream (no ISOBMFF container).
JXL_SIGNATURE = b"\xff\x0a"


def _imagecodecs() -> ModuleType | None:
    """Import imagecodecs now, or None when it is missing or blocked."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def _has_codecs(*names: str) -> bool:
    """Whether imagecodecs is importable and each named codec reports itself available.

    ``imagecodecs.JPEGXL.available`` style flags are False when a wheel was built without the
    codec; the ``*_encode`` functions then exist but raise, so checking them is not enough.
    """
    module = _imagecodecs()
    if module is None:
        return False
    for name in names:
        flag = getattr(getattr(module, name.upper(), None), "available", False)
        encode = getattr(module, f"{name.lower()}_encode", None)
        decode = getattr(module, f"{name.lower()}_decode", None)
        if flag is not True or not callable(encode) or not callable(decode):
            return False
    return True


def _module() -> Any:
    module = _imagecodecs()
    if module is None:  # encode/decode check available() first; this is a safety net
        raise ImportError('imagecodecs is missing: pip install "autoenc[codecs]"')
    return module


class JpegXL(ClassicalCodec):
    """JPEG XL (libjxl) on 2-D uint8/uint16, rate set by searching the distance.

    ``jpegxl_encode`` returns a naked codestream (it starts with FF 0A, no ISOBMFF boxes), which
    is also a valid .jxl file, so ``codestream_bytes == file_bytes``.

    Args:
        effort: Encoder effort 1-10 (7 is libjxl's default).
    """

    name: ClassVar[str] = "jpegxl"
    param_name: ClassVar[str] = "distance"
    requirement: ClassVar[str] = "imagecodecs with JPEG XL support"
    default_max_encodes: ClassVar[int] = 12

    #: libjxl accepts distances up to 25; below ~0.05 it is near lossless anyway.
    MIN_DISTANCE: ClassVar[float] = 0.05
    MAX_DISTANCE: ClassVar[float] = 25.0

    def __init__(self, effort: int = 7) -> None:
        if not 1 <= effort <= 10:
            raise ValueError(f"effort must be in 1..10, got {effort!r}")
        self.effort = int(effort)

    @classmethod
    def available(cls) -> bool:
        """Whether imagecodecs with a JPEG XL encoder and decoder is importable."""
        return _has_codecs("jpegxl")

    def _encode_once(self, image: IntImage, param: float) -> bytes:
        return bytes(_module().jpegxl_encode(image, distance=param, effort=self.effort))

    def _decode_raw(self, data: bytes) -> NDArray[Any]:
        return np.asarray(_module().jpegxl_decode(data))

    def _search_space(self, image: IntImage, bpp: float) -> SearchSpace:
        # Start mid-range; d log(bpp) / d log(distance) runs from about -0.7 to -2 (measured).
        return SearchSpace(start=2.0, low=self.MIN_DISTANCE, high=self.MAX_DISTANCE, slope=-1.5)

    def _codestream_bytes(self, data: bytes) -> int | None:
        return len(data) if data.startswith(JXL_SIGNATURE) else None

    def _fixed_params(self) -> dict[str, Any]:
        return {"effort": self.effort}


class HTJ2K(ClassicalCodec):
    """High-throughput JPEG 2000 (OpenJPH encoder), rate set by searching the quantisation step.

    Encodes the image in its own precision (``level`` is a step relative to that range) with
    the irreversible 9/7 path and writes a raw J2K codestream, so
    ``codestream_bytes == file_bytes``.

    Decoding goes through OpenJPEG (``imagecodecs.jpeg2k_decode``), not OpenJPH: OpenJPH's
    irreversible decode casts without clamping, so overshoot wraps (255 -> 0 in 8 bits and,
    measured here, 65535 -> 0 in 16 bits near saturated pixels), while OpenJPEG clamps to the
    sample range. That removes the need to encode 8-bit data as uint16.
    """

    name: ClassVar[str] = "htj2k"
    param_name: ClassVar[str] = "qstep"
    requirement: ClassVar[str] = "imagecodecs with HTJ2K and JPEG 2000 support"
    default_max_encodes: ClassVar[int] = 12

    MIN_QSTEP: ClassVar[float] = 1e-6
    MAX_QSTEP: ClassVar[float] = 2.0

    @classmethod
    def available(cls) -> bool:
        """Whether imagecodecs can encode HTJ2K and decode it with OpenJPEG."""
        return _has_codecs("htj2k", "jpeg2k")

    def _encode_once(self, image: IntImage, param: float) -> bytes:
        return bytes(_module().htj2k_encode(image, level=param, reversible=False))

    def _decode_raw(self, data: bytes) -> NDArray[Any]:
        return np.asarray(_module().jpeg2k_decode(data))

    def _search_space(self, image: IntImage, bpp: float) -> SearchSpace:
        # qstep is relative to the sample range, so one start fits both depths (~1 bpp on
        # speckled SAR); the log-log slope steepens from about -1.3 to -3 at low rates.
        return SearchSpace(start=0.1, low=self.MIN_QSTEP, high=self.MAX_QSTEP, slope=-1.5)

    def _codestream_bytes(self, data: bytes) -> int | None:
        return len(data) if data.startswith(J2K_SIGNATURE) else None

    def _fixed_params(self) -> dict[str, Any]:
        return {"reversible": False, "decoder": "openjpeg"}
