# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""JPEG 2000 (irreversible 9/7) through Pillow's OpenJPEG, the primary classical baseline.

Pillow's ``quality_mode="rates"`` takes a compression ratio relative to the sample precision
(16 bits for mode ``I;16``, 8 for ``L``), so the nominal ratio for a target is
``bits / bpp``. OpenJPEG truncates whole coding passes per code-block, which makes file size
a *staircase* in the ratio; on a 256 x 256 image with the default 64 x 64 code-blocks the
steps reach about 24 % because the coarse subbands are single blocks. 32 x 32 code-blocks cut
the steps to about 6 % (so a 3 % tolerance is reachable) for about 0.1 dB PSNR at 0.5-1 bpp,
hence the default here.

Pillow is imported lazily so ``autoenc.baselines`` imports (and reports the codec unavailable)
without it.
"""

from __future__ import annotations

import io
import struct
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from autoenc.baselines.base import ClassicalCodec, IntImage, SearchSpace

#: Start of a raw J2K codestream: SOC then SIZ marker.
J2K_SIGNATURE = b"\xff\x4f\xff\x51"


def j2k_codestream_bytes(data: bytes) -> int | None:
    """Return the size of the JPEG 2000 codestream inside ``data``.

    For a JP2 file this is the payload of the contiguous-codestream ('jp2c') box, read from
    the box headers (ISO/IEC 15444-1 annex I), so no second encode with ``no_jp2`` is needed;
    a raw J2K/J2C stream is its own codestream. None when neither structure is found.
    """
    if data.startswith(J2K_SIGNATURE):
        return len(data)
    pos = 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if length == 1:  # 64-bit extended length follows the type
            if pos + 16 > len(data):
                return None
            (length,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif length == 0:  # box runs to the end of the file
            length = len(data) - pos
        if length < header:
            return None
        if kind == b"jp2c":
            return int(length - header)
        pos += length
    return None


class JPEG2000(ClassicalCodec):
    """JPEG 2000 9/7 in a JP2 file, rate set by Pillow's ratio and corrected by measurement.

    The first encode uses the nominal ratio ``bits / bpp``; while the real file size (JP2
    boxes included) misses the target by more than the tolerance, the ratio is corrected by a
    secant step in log space and the image re-encoded. Below the floor (JP2 boxes plus main
    and tile headers, about 0.03 bpp on 256 x 256) the size stops changing; the search then
    stops and returns that smallest encode with ``hit=False``.

    Args:
        codeblock_size: Code-block width and height (powers of two, 4-1024, area <= 4096).
            Smaller blocks give finer rate steps for a little coding efficiency.
        num_resolutions: DWT levels + 1; 0 lets OpenJPEG choose (6).
    """

    name: ClassVar[str] = "jpeg2000"
    param_name: ClassVar[str] = "ratio"
    requirement: ClassVar[str] = "Pillow built with OpenJPEG"

    #: Largest ratio tried: any image is at the header floor long before.
    MAX_RATIO: ClassVar[float] = 1e6

    def __init__(
        self, codeblock_size: tuple[int, int] = (32, 32), num_resolutions: int = 0
    ) -> None:
        w, h = codeblock_size
        if not all(4 <= s <= 1024 and s & (s - 1) == 0 for s in (w, h)) or w * h > 4096:
            raise ValueError(
                f"codeblock_size must be powers of two in 4..1024 with area <= 4096, "
                f"got {codeblock_size!r}"
            )
        if num_resolutions < 0:
            raise ValueError(f"num_resolutions must be >= 0, got {num_resolutions!r}")
        self.codeblock_size = (int(w), int(h))
        self.num_resolutions = int(num_resolutions)

    @classmethod
    def available(cls) -> bool:
        """Whether Pillow is importable and built with OpenJPEG."""
        try:
            from PIL import features
        except ImportError:
            return False
        try:
            return bool(features.check_codec("jpg_2000"))
        except Exception:  # an odd Pillow build must not break codec discovery
            return False

    def _encode_once(self, image: IntImage, param: float) -> bytes:
        from PIL import Image

        h, w = image.shape
        if image.dtype.itemsize == 1:
            pil = Image.frombytes("L", (w, h), image.tobytes())
        else:
            pil = Image.frombytes("I;16", (w, h), image.astype("<u2").tobytes())
        options: dict[str, Any] = {
            "quality_mode": "rates",
            "quality_layers": [param],
            "irreversible": True,
            "codeblock_size": self.codeblock_size,
        }
        if self.num_resolutions:
            options["num_resolutions"] = self.num_resolutions
        buf = io.BytesIO()
        pil.save(buf, "JPEG2000", **options)
        return buf.getvalue()

    def _decode_raw(self, data: bytes) -> NDArray[Any]:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)

    def _search_space(self, image: IntImage, bpp: float) -> SearchSpace:
        bits = 8 * image.dtype.itemsize
        return SearchSpace(start=bits / bpp, low=1.0, high=self.MAX_RATIO, slope=-1.0)

    def _codestream_bytes(self, data: bytes) -> int | None:
        return j2k_codestream_bytes(data)

    def _fixed_params(self) -> dict[str, Any]:
        return {
            "codeblock_size": self.codeblock_size,
            "num_resolutions": self.num_resolutions,
            "irreversible": True,
        }
