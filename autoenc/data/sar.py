# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Invertible radiometric transforms for Sentinel-1 intensity images (compatibility names).

The formulas live in :mod:`autoenc.sar` (:class:`~autoenc.sar.normalisation.Normalisation` for
the dB window and its codes, :mod:`autoenc.sar.radiometry` for intensity <-> dB); this module
keeps the older free-function names, each a call of the record, so existing imports still work.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from autoenc.sar.normalisation import (
    CODE_MAX,
    DEFAULT_DB_WINDOW,
    Normalisation,
    codes_from_unit,
    unit_from_codes,
)
from autoenc.sar.radiometry import (
    DEFAULT_NOISE_FLOOR_DB,
    db_to_intensity,
    intensity_to_db,
    valid_mask,
)

__all__ = [
    "DEFAULT_DB_WINDOW",
    "DEFAULT_NOISE_FLOOR_DB",
    "UINT16_MAX",
    "Normalisation",
    "db_to_intensity",
    "db_to_unit",
    "intensity_to_db",
    "uint16_to_unit",
    "unit_to_db",
    "unit_to_uint16",
    "valid_mask",
]

#: Largest uint16 code (:data:`autoenc.sar.normalisation.CODE_MAX`).
UINT16_MAX = CODE_MAX

#: Unit values -> uint16 codes (max error 1/131070).
unit_to_uint16 = codes_from_unit
#: Stored uint16 codes -> float32 in [0, 1].
uint16_to_unit = unit_from_codes


def db_to_unit(db: ArrayLike, vmin: float, vmax: float) -> NDArray[np.float32]:
    """Clip dB to ``[vmin, vmax]`` and rescale linearly to ``[0, 1]``."""
    return Normalisation(vmin, vmax).to_unit(db)


def unit_to_db(u: ArrayLike, vmin: float, vmax: float) -> NDArray[np.float32]:
    """Inverse of :func:`db_to_unit` (values outside [0, 1] are clipped)."""
    return Normalisation(vmin, vmax).from_unit(u).astype(np.float32)
