# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Radiometry round trips and invalid-value handling."""

from __future__ import annotations

import numpy as np
import pytest

from autoenc.sar.normalisation import Normalisation
from autoenc.sar.normalisation import codes_from_unit as unit_to_uint16
from autoenc.sar.normalisation import unit_from_codes as uint16_to_unit
from autoenc.sar.radiometry import (
    DEFAULT_NOISE_FLOOR_DB,
    db_to_intensity,
    intensity_to_db,
    valid_mask,
)


def db_to_unit(db: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    return Normalisation(vmin, vmax).to_unit(db)


def unit_to_db(u: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    return Normalisation(vmin, vmax).from_unit(u).astype(np.float32)


def test_db_unit_round_trip_inside_window() -> None:
    db = np.linspace(-25.0, 5.0, 1001)
    u = db_to_unit(db, -25.0, 5.0)
    assert u.dtype == np.float32 and u.min() == 0.0 and u.max() == 1.0
    np.testing.assert_allclose(unit_to_db(u, -25.0, 5.0), db, atol=1e-4)


def test_clipping_outside_window() -> None:
    u = db_to_unit(np.array([-40.0, 20.0]), -25.0, 5.0)
    np.testing.assert_array_equal(u, [0.0, 1.0])


def test_intensity_round_trip() -> None:
    i = db_to_intensity(np.linspace(-24.9, 4.9, 300))
    n = Normalisation()
    np.testing.assert_allclose(n.inverse(n.forward(i)), i, rtol=1e-4)
    np.testing.assert_allclose(intensity_to_db(i), 10 * np.log10(i.astype(np.float64)), atol=1e-4)


def test_uint16_quantisation_error() -> None:
    u = np.random.default_rng(0).random(100_000).astype(np.float32)
    q = unit_to_uint16(u)
    assert q.dtype == np.uint16
    assert np.abs(uint16_to_unit(q).astype(np.float64) - u).max() <= 1 / 131070 + 1e-7
    np.testing.assert_array_equal(
        unit_to_uint16(np.array([-1.0, 0.0, 1.0, 2.0])), [0, 0, 65535, 65535]
    )


def test_invalid_values_map_to_floor() -> None:
    i = np.array([0.0, -1.0, np.nan, np.inf, -np.inf, 1e-9, 1.0])
    db = intensity_to_db(i)
    assert np.all(np.isfinite(db))
    np.testing.assert_allclose(db[:6], DEFAULT_NOISE_FLOOR_DB, atol=1e-5)
    assert db[6] == pytest.approx(0.0)
    np.testing.assert_array_equal(valid_mask(i), [False, False, False, False, False, True, True])


def test_bad_window_raises() -> None:
    with pytest.raises(ValueError, match="vmin_db=5.0.*vmax_db=-25.0"):
        Normalisation(vmin_db=5.0, vmax_db=-25.0)
    with pytest.raises(ValueError):
        db_to_unit(np.zeros(2), 1.0, 1.0)


def test_normalisation_dict_round_trip() -> None:
    n = Normalisation(-20.0, 0.0, -28.0)
    assert Normalisation.from_dict(n.to_dict()) == n
    with pytest.raises(ValueError, match="vmax_db"):
        Normalisation.from_dict({"vmin_db": -20.0})
