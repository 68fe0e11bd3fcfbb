# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Classical baselines (JPEG 2000, JPEG XL, HTJ2K) driven to a real bit rate.

Importing this package needs neither Pillow nor imagecodecs: each codec imports its library
on use and reports ``available()``. Look codecs up by name::

    codec = get_codec("jpeg2000")
    result = codec.encode(codes_uint16, bpp=0.5)  # result.bpp within 3 % when result.hit

:mod:`autoenc.baselines.trivial` (the trivial reference a trained model must beat, e.g.
:func:`~autoenc.baselines.trivial.patch_mean_psnr`) is imported on its own: it needs torch.
"""

from __future__ import annotations

from typing import Any

from autoenc.baselines.base import (
    ClassicalCodec,
    EncodeResult,
    SearchSpace,
    Trial,
    search_rate,
    unavailable_error,
)
from autoenc.baselines.extras import HTJ2K, JpegXL
from autoenc.baselines.jpeg2000 import JPEG2000

__all__ = [
    "CODECS",
    "HTJ2K",
    "JPEG2000",
    "ClassicalCodec",
    "EncodeResult",
    "JpegXL",
    "SearchSpace",
    "Trial",
    "available_codecs",
    "get_codec",
    "search_rate",
]


def _registry(*codecs: type[ClassicalCodec]) -> dict[str, type[ClassicalCodec]]:
    out: dict[str, type[ClassicalCodec]] = {}
    for cls in codecs:
        if cls.name in out:
            raise ValueError(f"duplicate codec name {cls.name!r}: {out[cls.name]} and {cls}")
        out[cls.name] = cls
    return out


#: Codec classes by name, in the order baselines are usually reported.
CODECS: dict[str, type[ClassicalCodec]] = _registry(JPEG2000, JpegXL, HTJ2K)


def available_codecs() -> list[str]:
    """Names of the codecs whose libraries are installed here (checked on each call)."""
    return [name for name, cls in CODECS.items() if cls.available()]


def get_codec(name: str, **kwargs: Any) -> ClassicalCodec:
    """Build the codec called ``name`` with constructor ``kwargs``.

    Raises:
        ValueError: For an unknown name, listing the valid ones.
        ImportError: When the codec's library is missing, naming the extra to install.
    """
    try:
        cls = CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; valid names: {', '.join(CODECS)}") from None
    if not cls.available():
        raise unavailable_error(name, cls.requirement)
    return cls(**kwargs)
