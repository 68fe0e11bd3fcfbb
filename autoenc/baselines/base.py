# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""What every classical baseline shares: input checks, the rate search and the result record.

A baseline is only comparable with a learned codec at the *same real bit rate*, counted on the
bytes a file would hold. Library "rate" knobs (a JPEG 2000 ratio, a JPEG XL distance, an HTJ2K
quantisation step) only approximate that, so :meth:`ClassicalCodec.encode` searches the knob in
log space until the measured file size is within a tolerance of the target.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

#: Integer images the codecs accept: the dataset's quantised dB-window codes.
IntImage = NDArray[np.unsignedinteger[Any]]


@dataclass(frozen=True, eq=False)
class EncodeResult:
    """One finished encode at (or as near as possible to) a requested bit rate.

    Attributes:
        data: The bytes exactly as a file would hold them, container included.
        decoded: The decoded image, same dtype and shape as the input.
        file_bytes: ``len(data)``; the primary rate number.
        codestream_bytes: Bytes of the bare codestream where it can be isolated without an
            extra encode (JPEG 2000 'jp2c' payload, a naked JPEG XL or J2K stream), else None.
        target_bpp: The requested rate in bits per pixel.
        encodes: Encoder calls the search used.
        hit: Whether ``|bpp / target_bpp - 1| <= tolerance``.
        params: The codec parameters of this encode (the searched one and fixed settings).
    """

    data: bytes
    decoded: IntImage
    file_bytes: int
    codestream_bytes: int | None
    target_bpp: float
    encodes: int
    hit: bool
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def bpp(self) -> float:
        """Real bits per pixel of the whole file."""
        return self.file_bytes * 8 / self.decoded.size

    @property
    def codestream_bpp(self) -> float | None:
        """Bits per pixel of the codestream alone, when it is known."""
        if self.codestream_bytes is None:
            return None
        return self.codestream_bytes * 8 / self.decoded.size


def check_dtype(dtype: DTypeLike) -> np.dtype[np.unsignedinteger[Any]]:
    """Return the native uint8/uint16 dtype for ``dtype`` or raise naming it."""
    dt = np.dtype(dtype)
    if dt.kind != "u" or dt.itemsize not in (1, 2):
        raise ValueError(
            f"dtype {dt} is not supported: expected uint8 or uint16 codes "
            "(see autoenc.sar.normalisation.codes_from_unit)"
        )
    return np.dtype(np.uint8) if dt.itemsize == 1 else np.dtype(np.uint16)


def check_image(image: NDArray[Any]) -> IntImage:
    """Validate a 2-D uint8/uint16 image and return it C-contiguous in native byte order."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {image.shape}")
    if image.size == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=check_dtype(image.dtype))


def _check_rate_args(bpp: float, tolerance: float, max_encodes: int) -> None:
    if not (math.isfinite(bpp) and bpp > 0):
        raise ValueError(f"bpp must be finite and > 0, got {bpp!r}")
    if not (math.isfinite(tolerance) and 0 < tolerance < 1):
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    if isinstance(max_encodes, bool) or not isinstance(max_encodes, int) or max_encodes < 1:
        raise ValueError(f"max_encodes must be an int >= 1, got {max_encodes!r}")


@dataclass(frozen=True)
class SearchSpace:
    """Where to look for the rate parameter, which must lower the rate as it grows.

    Attributes:
        start: First value tried; a good nominal guess saves encodes.
        low: Smallest value allowed (highest rate).
        high: Largest value allowed (lowest rate).
        slope: Prior for d log(bpp) / d log(param), used until two encodes measure it.
    """

    start: float
    low: float
    high: float
    slope: float = -1.0


class Trial(NamedTuple):
    """One encode of the rate search."""

    param: float
    data: bytes
    bpp: float


#: Identical sizes across a 2x parameter change mean the codec's floor or ceiling.
_SATURATED = math.log(2.0)


def search_rate(
    encode_at: Callable[[float], bytes],
    pixels: int,
    target: float,
    space: SearchSpace,
    tolerance: float,
    max_encodes: int,
) -> tuple[Trial, int]:
    """Find the parameter whose encode lands within ``tolerance`` of ``target`` bpp.

    Works on t = log(param) and e = log(bpp / target): extrapolates with the measured (or
    prior) slope until the target is bracketed, then interpolates between the bracket ends,
    kept 10 % away from either end so step-shaped rate curves still shrink the bracket. It
    stops on a hit, after ``max_encodes``, at a bound, or when the size stops changing
    (the container and headers set a floor no parameter goes below).

    Returns:
        The closest encode not above ``target * (1 + tolerance)`` (else the smallest one),
        and the number of encodes used.
    """
    lo, hi = math.log(space.low), math.log(space.high)
    t = min(max(math.log(space.start), lo), hi)
    trials: list[Trial] = []
    over: tuple[float, float] | None = None  # (t, e) with too many bits
    under: tuple[float, float] | None = None  # (t, e) with too few bits
    last: tuple[float, float] | None = None
    while len(trials) < max_encodes:
        data = encode_at(math.exp(t))
        trial = Trial(math.exp(t), data, len(data) * 8 / pixels)
        trials.append(trial)
        if abs(trial.bpp / target - 1) <= tolerance:
            break
        e = math.log(trial.bpp / target)
        same_side = over if e > 0 else under
        if same_side is not None and same_side[1] == e and abs(t - same_side[0]) >= _SATURATED:
            break
        if e > 0:
            over = (t, e)
        else:
            under = (t, e)
        if over is not None and under is not None:
            frac = min(max(over[1] / (over[1] - under[1]), 0.1), 0.9)
            t_next = over[0] + frac * (under[0] - over[0])
        else:
            slope = space.slope
            if last is not None and last[0] != t and last[1] != e:
                measured = (e - last[1]) / (t - last[0])
                slope = min(max(measured, -8.0), -0.125) if measured < 0 else slope
            t_next = min(max(t - e / slope, lo), hi)
        last = (t, e)
        if abs(t_next - t) < 1e-9:
            break
        t = t_next
    fitting = [tr for tr in trials if tr.bpp <= target * (1 + tolerance)]
    if not fitting:
        return min(trials, key=lambda tr: tr.bpp), len(trials)
    return min(fitting, key=lambda tr: abs(tr.bpp / target - 1)), len(trials)


def unavailable_error(name: str, requirement: str) -> ImportError:
    """The error for a codec whose library is missing, naming the extra that provides it."""
    return ImportError(
        f"codec {name!r} is unavailable: it needs {requirement}; "
        'install it with: pip install "autoenc[codecs]"'
    )


class ClassicalCodec(ABC):
    """A classical image codec driven to a real bit rate.

    Subclasses say how to encode once at a parameter value, how to decode bytes, and where to
    search; :meth:`encode` does the checking, the rate search and the bookkeeping.
    """

    #: Registry key.
    name: ClassVar[str]
    #: Name of the searched parameter in :attr:`EncodeResult.params`.
    param_name: ClassVar[str]
    #: What must be installed, for error messages.
    requirement: ClassVar[str]
    #: Encoder calls the rate search may spend when ``encode`` is not told.
    default_max_encodes: ClassVar[int] = 8

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """Whether the backing library and codec are importable here (never raises)."""

    @abstractmethod
    def _encode_once(self, image: IntImage, param: float) -> bytes:
        """Encode ``image`` at one parameter value."""

    @abstractmethod
    def _decode_raw(self, data: bytes) -> NDArray[Any]:
        """Decode bytes to whatever integer array the library returns."""

    @abstractmethod
    def _search_space(self, image: IntImage, bpp: float) -> SearchSpace:
        """Start value and bounds of the parameter search for this image and target."""

    def _codestream_bytes(self, data: bytes) -> int | None:
        """Bytes of the bare codestream inside ``data``, when cheaply known."""
        return None

    def _fixed_params(self) -> dict[str, Any]:
        """Settings that stay fixed during the search, reported in ``params``."""
        return {}

    def _check_available(self) -> None:
        if not self.available():
            raise unavailable_error(self.name, self.requirement)

    def encode(
        self,
        image: NDArray[Any],
        bpp: float,
        tolerance: float = 0.03,
        max_encodes: int | None = None,
    ) -> EncodeResult:
        """Encode ``image`` as close to ``bpp`` real file bits per pixel as the codec allows.

        Args:
            image: 2-D uint8 or uint16 codes.
            bpp: Target rate counted on the whole file, container included.
            tolerance: Relative rate error that counts as a hit.
            max_encodes: Most encoder calls the search may spend; None uses the codec's
                :attr:`default_max_encodes`.

        Returns:
            The chosen encode; ``hit`` is False when the target lies outside what the codec
            reaches (e.g. below the header floor) or the budget ran out.

        Raises:
            ValueError: On a non-2-D, empty or non-uint8/uint16 image or a bad rate argument.
            ImportError: When the backing library is missing.
        """
        img = check_image(image)
        if max_encodes is None:
            max_encodes = self.default_max_encodes
        _check_rate_args(bpp, tolerance, max_encodes)
        self._check_available()
        best, encodes = search_rate(
            lambda p: self._encode_once(img, p),
            img.size,
            bpp,
            self._search_space(img, bpp),
            tolerance,
            max_encodes,
        )
        return EncodeResult(
            data=best.data,
            decoded=self.decode(best.data, img.dtype),
            file_bytes=len(best.data),
            codestream_bytes=self._codestream_bytes(best.data),
            target_bpp=float(bpp),
            encodes=encodes,
            hit=abs(best.bpp / bpp - 1) <= tolerance,
            params={self.param_name: best.param, **self._fixed_params()},
        )

    def decode(self, data: bytes, dtype: DTypeLike) -> IntImage:
        """Decode file bytes to a 2-D array of ``dtype``, clipping to its range.

        Raises:
            ValueError: On an unsupported dtype or bytes that decode to a non-2-D array.
        """
        dt = check_dtype(dtype)
        self._check_available()
        raw = np.asarray(self._decode_raw(bytes(data)))
        if raw.ndim == 3 and raw.shape[-1] == 1:
            raw = raw[..., 0]
        if raw.ndim != 2:
            raise ValueError(f"{self.name} data decoded to shape {raw.shape}, expected (H, W)")
        info = np.iinfo(dt)
        return np.clip(raw.astype(np.int64), info.min, info.max).astype(dt)
