# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Numpy-only home of the scene's radiometry, shared by ``prepare`` and the codec.

* :mod:`autoenc.sar.radiometry`: linear intensity <-> dB, validity of pixels;
* :mod:`autoenc.sar.normalisation`: the dB window record, dB <-> unit <-> uint16 code.
"""

from autoenc.sar.normalisation import (
    CODE_MAX,
    DEFAULT_DB_WINDOW,
    DEFAULT_NOISE_FLOOR_DB,
    Normalisation,
    codes_from_unit,
    unit_from_codes,
)

__all__ = [
    "CODE_MAX",
    "DEFAULT_DB_WINDOW",
    "DEFAULT_NOISE_FLOOR_DB",
    "Normalisation",
    "codes_from_unit",
    "unit_from_codes",
]
