"""Property tests of the dB window record: dB <-> unit <-> uint16 code are exact inverses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoenc.sar.calibration import Calibration
from autoenc.sar.normalisation import (
    CODE_MAX,
    Normalisation,
    codes_from_unit,
    unit_from_codes,
)
from autoenc.sar.radiometry import BlockConverter

N_WINDOWS = 40


def _windows(seed: int) -> list[Normalisation]:
    """Random windows: vmin in [-50, 0] dB, width in [5, 80] dB (every one valid)."""
    rng = np.random.default_rng(seed)
    lo = rng.uniform(-50.0, 0.0, N_WINDOWS)
    width = rng.uniform(5.0, 80.0, N_WINDOWS)
    return [
        Normalisation(float(a), float(a + w), float(a - 5.0))
        for a, w in zip(lo, width, strict=True)
    ]


def _inside(n: Normalisation, rng: np.random.Generator, size: int = 4096) -> np.ndarray:
    return rng.uniform(n.vmin_db, n.vmax_db, size).astype(np.float32)


def test_from_unit_inverts_to_unit_inside_the_window() -> None:
    rng = np.random.default_rng(1)
    for n in _windows(1):
        db = _inside(n, rng)
        back = n.from_unit(n.to_unit(db))
        tol = 4 * np.finfo(np.float32).eps * max(abs(n.vmin_db), abs(n.vmax_db))
        np.testing.assert_allclose(back, db.astype(np.float64), rtol=0, atol=tol)


def test_to_codes_inverts_from_codes_on_every_code() -> None:
    q = np.arange(1 << 16, dtype=np.uint16)
    for n in _windows(2):
        np.testing.assert_array_equal(n.to_codes(n.from_codes(q)), q)
    np.testing.assert_array_equal(codes_from_unit(unit_from_codes(q)), q)


def test_from_codes_within_half_a_code_step_inside_the_window() -> None:
    rng = np.random.default_rng(3)
    for n in _windows(3):
        db = _inside(n, rng)
        width = n.vmax_db - n.vmin_db
        err = np.abs(n.from_codes(n.to_codes(db)) - db.astype(np.float64))
        # half a step, plus float32 rounding of the dB values themselves
        slack = 4 * np.finfo(np.float32).eps * max(abs(n.vmin_db), abs(n.vmax_db))
        assert err.max() <= width / 131070 + slack


def test_to_codes_agrees_with_to_unit_then_codes_within_one_code() -> None:
    rng = np.random.default_rng(4)
    for n in _windows(4):
        db = _inside(n, rng)
        a = n.to_codes(db).astype(np.int64)
        b = codes_from_unit(n.to_unit(db)).astype(np.int64)
        assert np.abs(a - b).max() <= 1


def test_values_outside_the_window_clip_to_both_ends() -> None:
    n = Normalisation(-25.0, 5.0)
    db = np.array([-1e6, -60.0, -25.0, 5.0, 40.0, 1e6, -np.inf, np.inf], np.float32)
    np.testing.assert_array_equal(n.to_unit(db), [0, 0, 0, 1, 1, 1, 0, 1])
    np.testing.assert_array_equal(n.to_codes(db), [0, 0, 0, 65535, 65535, 65535, 0, 65535])
    np.testing.assert_array_equal(n.from_unit(np.array([-0.5, 0.0, 1.0, 2.0])), [-25, -25, 5, 5])
    np.testing.assert_array_equal(codes_from_unit(np.array([-1.0, np.nan, 2.0])), [0, 0, 65535])
    assert CODE_MAX == 65535.0


def test_dict_round_trip_and_missing_key_named() -> None:
    for n in _windows(5):
        assert Normalisation.from_dict(n.to_dict()) == n
    # the noise floor is optional (older manifests); the window ends are not
    assert Normalisation.from_dict({"vmin_db": -20.0, "vmax_db": 0.0}).noise_floor_db == -30.0
    for missing in ("vmin_db", "vmax_db"):
        d = {"vmin_db": -20.0, "vmax_db": 0.0}
        del d[missing]
        with pytest.raises(ValueError, match=f"lacks key '{missing}'"):
            Normalisation.from_dict(d)
    with pytest.raises(ValueError, match="invalid dB window"):
        Normalisation(5.0, -25.0)


# raw input -> dB (the prepare/compress converter) and its inverse (the decoder's formulas)
K = 350.0  # amplitude calibration constant: sigma0 = DN^2 / K^2
K_DB = 20 * math.log10(K)
_CALIBRATION = {"intensity": None, "db": None, "amplitude": Calibration(constant=K)}


def _raw(kind: str, db: np.ndarray) -> np.ndarray:
    """dB -> the input's raw units (float32)."""
    if kind == "intensity":
        return (10.0 ** (db / 10.0)).astype(np.float32)
    if kind == "db":
        return db.astype(np.float32)
    return (10.0 ** ((db + K_DB) / 20.0)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(_CALIBRATION))
def test_raw_to_codes_and_back_within_one_code(kind: str) -> None:
    rng = np.random.default_rng(6)
    for n in _windows(6)[:10]:
        conv = BlockConverter(kind, None, n.noise_floor_db, _CALIBRATION[kind])  # type: ignore[arg-type]
        raw = _raw(kind, _inside(n, rng, 1024).astype(np.float64)).reshape(32, 32)
        db = conv.to_db(raw, 0, 0)
        codes = n.to_codes(db)
        raw_back = _raw(kind, n.from_codes(codes))
        again = n.to_codes(conv.to_db(raw_back, 0, 0)).astype(np.int64)
        assert np.abs(again - codes.astype(np.int64)).max() <= 1
        # and the raw value itself comes back within one code step of the window
        step = (n.vmax_db - n.vmin_db) / CODE_MAX
        assert np.abs(conv.to_db(raw_back, 0, 0) - db).max() <= step
