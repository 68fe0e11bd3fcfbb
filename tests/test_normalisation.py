"""Property tests of the dB window record: dB <-> unit <-> uint16 code are exact inverses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autoenc.sar.calibration import Calibration, CalibrationLUT
from autoenc.sar.normalisation import (
    CODE_MAX,
    Normalisation,
    codes_from_unit,
    unit_from_codes,
)
from autoenc.sar.radiometry import BlockConverter, db_to_intensity

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


# raw input -> dB (the prepare/compress converter) and its inverse (BlockConverter.from_db, the
# decoder's)
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
        raw_back = conv.from_db(n.from_codes(codes), 0, 0)  # the decoder's inverse
        again = n.to_codes(conv.to_db(raw_back, 0, 0)).astype(np.int64)
        assert np.abs(again - codes.astype(np.int64)).max() <= 1
        # and the raw value itself comes back within one code step of the window
        step = (n.vmax_db - n.vmin_db) / CODE_MAX
        assert np.abs(conv.to_db(raw_back, 0, 0) - db).max() <= step


def test_from_db_inverts_to_db_for_every_kind_and_a_lut() -> None:
    rng = np.random.default_rng(8)
    db = rng.uniform(-29.0, 40.0, (40, 50))
    a = np.array([[300.0, 420.0], [350.0, 500.0]])
    lut = CalibrationLUT(np.array([0.0, 39.0]), np.array([0.0, 49.0]), a, "sigmaNought", "t")
    cases = [("intensity", None), ("db", None), ("amplitude", Calibration(constant=K)),
             ("amplitude", Calibration(lut=lut)), ("amplitude", Calibration())]  # fmt: skip
    for kind, cal in cases:
        conv = BlockConverter(kind, None, -30.0, cal)  # type: ignore[arg-type]
        raw = conv.from_db(db, 3, 7)
        back = conv.to_db(raw.astype(np.float32), 3, 7)
        np.testing.assert_allclose(back, db, atol=1e-4, err_msg=f"{kind} {cal}")


def test_float32_decoding_of_float32_bands_is_within_float32_rounding() -> None:
    """Float32 dB (the decoder's choice for float32 bands) stays float32, within 1e-6 relative."""
    db = np.random.default_rng(9).uniform(-29.0, 40.0, (40, 50))
    for kind in ("intensity", "db"):
        conv = BlockConverter(kind, None, -30.0)  # type: ignore[arg-type]
        ref = conv.from_db(db, 0, 0)
        got = conv.from_db(db.astype(np.float32), 0, 0)
        assert ref.dtype == np.float64 and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0, err_msg=kind)
    n = Normalisation(-25.0, 5.0, -30.0)
    unit = np.linspace(-0.1, 1.1, 101, dtype=np.float32)
    assert n.from_unit(unit).dtype == np.float64
    got32 = n.from_unit(unit, np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, n.from_unit(unit), rtol=0, atol=4e-6)


# --- the same formulas on torch tensors (the metrics and the data loader use them) ------------

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
F32 = 4 * float(np.finfo(np.float32).eps)  # relative float32 tolerance
_Case = tuple[torch.Tensor, np.ndarray, float, float]  # tensor path, numpy path, rtol, atol


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_path_equals_the_numpy_path(device: str) -> None:
    """Tensor in -> tensor out on its device, in its dtype, equal to numpy to float32 rounding."""
    rng = np.random.default_rng(7)
    for n in _windows(7)[:10]:
        scale = max(abs(n.vmin_db), abs(n.vmax_db))
        db = rng.uniform(n.vmin_db - 10.0, n.vmax_db + 10.0, (2, 1, 16, 16))  # some outside
        unit = rng.uniform(-0.1, 1.1, (2, 1, 16, 16))
        q = rng.integers(0, 1 << 16, (2, 1, 16, 16)).astype(np.uint16)
        for dtype in (torch.float32, torch.float64):
            t_db = torch.tensor(db, dtype=dtype, device=device)
            t_unit = torch.tensor(unit, dtype=dtype, device=device)
            before = t_unit.clone()
            cases: list[_Case] = [
                (n.to_unit(t_db), n.to_unit(db), 0.0, F32),
                (n.from_unit(t_unit), n.from_unit(unit), 0.0, F32 * scale),
                (n.inverse(t_unit), n.inverse(unit), F32 * scale, 0.0),  # dB error * ln 10 / 10
            ]
            for got, want, rtol, atol in cases:
                assert isinstance(got, torch.Tensor)
                assert got.dtype == dtype and got.device.type == device
                np.testing.assert_allclose(got.cpu().numpy(), want, rtol=rtol, atol=atol)
            assert torch.equal(t_unit, before)  # inputs are never modified
        if device == "cpu":  # float64 tensors and numpy take the same float64 steps
            assert np.array_equal(n.from_unit(torch.from_numpy(unit)).numpy(), n.from_unit(unit))
        t_q = torch.from_numpy(q).to(device)
        for got, want, atol in ((unit_from_codes(t_q), unit_from_codes(q), F32),
                                (n.from_codes(t_q), n.from_codes(q), F32 * scale)):  # fmt: skip
            assert got.dtype == torch.float32 and got.device.type == device
            np.testing.assert_allclose(got.cpu().numpy(), want, rtol=0, atol=atol)
        # the codes back from the tensor path's units are the codes themselves
        np.testing.assert_array_equal(codes_from_unit(unit_from_codes(t_q).cpu().numpy()), q)


def test_integer_tensors_compute_in_float32_and_codes_are_not_overwritten() -> None:
    n = Normalisation(-25.0, 5.0)
    assert n.to_unit(torch.tensor([-25, -10, 5])).tolist() == [0.0, 0.5, 1.0]
    assert n.from_unit(torch.tensor([0, 1])).dtype == torch.float32
    f = torch.tensor([0.0, 65535.0])  # float32 "codes": divided into a new tensor
    assert unit_from_codes(f).tolist() == [0.0, 1.0] and f.tolist() == [0.0, 65535.0]
    i32 = torch.tensor([0, 32768, 65535], dtype=torch.int32)  # the evaluation's int32 codes
    assert torch.equal(unit_from_codes(i32), torch.from_numpy(unit_from_codes(i32.numpy())))


def test_width_scales_unit_differences_to_db() -> None:
    rng = np.random.default_rng(8)
    for n in _windows(8):
        assert n.width_db == n.vmax_db - n.vmin_db == n.window[1] - n.window[0]
        a, b = rng.random(256), rng.random(256)
        diff = n.from_unit(a) - n.from_unit(b)
        tol = 4 * np.finfo(np.float64).eps * max(abs(n.vmin_db), abs(n.vmax_db))
        np.testing.assert_allclose(diff, n.width_db * (a - b), rtol=0, atol=tol)


def test_from_window_takes_a_pair_or_a_record_and_names_a_bad_one() -> None:
    n = Normalisation(-20.0, 0.0, -35.0)
    assert Normalisation.from_window(n) is n
    assert Normalisation.from_window((-20, 0.0)) == Normalisation(-20.0, 0.0)
    assert Normalisation.from_window(np.array([-20.0, 0.0])).window == (-20.0, 0.0)
    for bad in [(0.0,), (1.0, 2.0, 3.0), "ab", 3.0, ("x", 1.0)]:
        with pytest.raises(ValueError, match=r"window_db must be \(vmin_db, vmax_db\), got"):
            Normalisation.from_window(bad)  # type: ignore[arg-type]
    for bad_window in [(5.0, -25.0), (0.0, 0.0), (math.nan, 1.0), (0.0, math.inf)]:
        with pytest.raises(ValueError, match=r"window_db \(.*\): invalid dB window"):
            Normalisation.from_window(bad_window)


def test_db_to_intensity_tensor_path_and_inplace() -> None:
    db = np.linspace(-40.0, 40.0, 81)
    t = torch.from_numpy(db.copy())  # float64
    out = db_to_intensity(t)
    assert out.dtype == torch.float64 and torch.equal(t, torch.from_numpy(db))
    np.testing.assert_allclose(out.numpy(), 10.0 ** (db / 10.0), rtol=1e-14)
    np.testing.assert_allclose(out.numpy(), db_to_intensity(db), rtol=F32)  # numpy: float32
    same = db_to_intensity(t, inplace=True)
    assert same is t and torch.equal(same, out)
    with pytest.raises(ValueError, match="inplace=True applies to torch tensors"):
        db_to_intensity(db, inplace=True)  # type: ignore[call-overload]
