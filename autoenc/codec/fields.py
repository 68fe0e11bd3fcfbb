# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Checked reads of an untrusted JSON object, field by field (the ``.aec`` header's parser).

Every reader takes the object, the key and the dotted path of the object (``"input."``) and
either returns a value of the right type inside its range or raises :class:`FieldError` whose
message names the field and shows (a prefix of) the bad value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


class FieldError(ValueError):
    """A missing, mistyped or out-of-range field; the message names it."""


def need(cond: bool, what: str, value: Any = None) -> None:
    """Raise :class:`FieldError` for field ``what`` (showing ``value``) unless ``cond``."""
    if not cond:
        shown = "" if value is None else f" ({show(value)})"
        raise FieldError(f"header field {what} is missing or invalid{shown}")


def show(v: Any) -> str:
    """``repr(v)``, at most 60 characters."""
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(v: Any, lo: float = -math.inf, hi: float = math.inf) -> bool:
    """A finite int or float (not a bool) in ``[lo, hi]``."""
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and lo <= v <= hi
    )


def get_dict(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``d[key]``, an object."""
    v = d.get(key)
    need(isinstance(v, dict), f"{where}{key}", v)
    return v  # type: ignore[return-value]


def get_str(d: dict[str, Any], key: str, where: str, optional: bool = False) -> str | None:
    """``d[key]``, a string (or null/absent when ``optional``)."""
    v = d.get(key)
    need(isinstance(v, str) or (optional and v is None), f"{where}{key}", v)
    return v


def get_int(d: dict[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    """``d[key]``, an int in ``[lo, hi]``."""
    v = d.get(key)
    need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, f"{where}{key}", v)
    return int(v)  # type: ignore[arg-type]


def get_float(d: dict[str, Any], key: str, lo: float, hi: float, where: str) -> float:
    """``d[key]``, a finite number in ``[lo, hi]``, as float."""
    v = d.get(key)
    need(is_number(v, lo, hi), f"{where}{key}", v)
    return float(v)  # type: ignore[arg-type]


def numbers(v: Any, what: str, lo: float = -math.inf, hi: float = math.inf) -> NDArray[np.float64]:
    """A non-empty list of finite numbers in ``[lo, hi]``, as float64."""
    need(isinstance(v, list) and len(v) >= 1 and all(is_number(x, lo, hi) for x in v), what)
    return np.asarray(v, dtype=np.float64)
