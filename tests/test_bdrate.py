# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""PCHIP, BD-rate / BD-quality, the paired bootstrap and summary statistics."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from autoenc.metrics.bdrate import BDResult, bd_quality, bd_rate, bootstrap_bd, pchip
from autoenc.metrics.stats import summarize

Curve = Callable[[np.ndarray], np.ndarray]
RATES = np.array([0.1, 0.25, 0.5, 1.0, 2.0])


def linear_q(r: np.ndarray) -> np.ndarray:
    return 30.0 + 6.0 * np.log(r)


def concave_q(r: np.ndarray) -> np.ndarray:
    return 30.0 + 8.0 * np.log(r) - 0.5 * np.log(r) ** 2


# --- PCHIP -------------------------------------------------------------------------------------


def test_pchip_hand_checked() -> None:
    # h = [1, 1], secants m = [1, 3]: interior d = harmonic mean 1.5; left end estimate
    # (3*1 - 1*3)/2 = 0; right end (3*3 - 1)/2 = 4.
    p = pchip([0.0, 1.0, 2.0], [0.0, 1.0, 4.0])
    np.testing.assert_allclose(p.d, [0.0, 1.5, 4.0])
    assert float(p(0.5)) == pytest.approx(0.3125)
    assert float(p(1.5)) == pytest.approx(2.1875)
    assert p.integrate(0.0, 2.0) == pytest.approx(8.0 / 3.0)
    assert p.integrate(2.0, 0.0) == pytest.approx(-8.0 / 3.0)


def test_pchip_reproduces_points_and_sorts() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 8))
    y = rng.normal(size=8)
    perm = rng.permutation(8)
    p = pchip(x[perm], y[perm])
    np.testing.assert_allclose(p(x), y, rtol=0, atol=1e-12)
    assert p(x.reshape(2, 4)).shape == (2, 4)


def test_pchip_monotone_no_overshoot() -> None:
    x = np.arange(6.0)
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    v = pchip(x, y)(np.linspace(0, 5, 2001))
    assert v.min() >= 0.0 and v.max() <= 1.0
    assert np.all(np.diff(v) >= -1e-15)


def test_pchip_flat_at_local_extremum() -> None:
    p = pchip([0.0, 1.0, 2.0], [0.0, 1.0, 0.0])
    assert p.d[1] == 0.0
    assert p(np.linspace(0, 2, 101)).max() == pytest.approx(1.0)


def test_pchip_two_points_linear() -> None:
    p = pchip([1.0, 3.0], [2.0, 6.0])
    xq = np.linspace(1, 3, 11)
    np.testing.assert_allclose(p(xq), 2.0 * xq, atol=1e-12)
    assert p.integrate(1.0, 3.0) == pytest.approx(8.0)


def test_pchip_integrate_matches_dense_trapezoid() -> None:
    x = np.array([-1.0, -0.3, 0.2, 0.9, 1.5, 2.0])
    p = pchip(x, x**3 - 2.0 * x)
    for a, b in [(-1.0, 2.0), (-0.7, 1.2), (0.25, 0.3)]:
        xs = np.linspace(a, b, 200_001)
        v = p(xs)
        dense = float(np.sum((v[1:] + v[:-1]) * np.diff(xs)) / 2.0)
        assert p.integrate(a, b) == pytest.approx(dense, rel=1e-6)


def test_pchip_bad_input() -> None:
    with pytest.raises(ValueError, match=r"duplicate x values \[1.0\]"):
        pchip([0.0, 1.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="equal length"):
        pchip([0.0, 1.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="at least 2"):
        pchip([0.0], [1.0])
    with pytest.raises(ValueError, match="extrapolate"):
        pchip([0.0, 1.0], [0.0, 1.0])(1.5)


# --- BD-rate / BD-quality ----------------------------------------------------------------------


@pytest.mark.parametrize("curve", [linear_q, concave_q])
@pytest.mark.parametrize(("factor", "expected"), [(0.8, -20.0), (1.25, 25.0)])
def test_bd_rate_recovers_known_shift(curve: Curve, factor: float, expected: float) -> None:
    q = curve(RATES)
    res = bd_rate(RATES, q, RATES * factor, q)
    assert res.value == pytest.approx(expected, abs=0.1)
    assert res.method == "pchip" and res.overlap_fraction == 1.0
    assert res.overlap == pytest.approx((q.min(), q.max()))
    assert (res.n_anchor, res.n_test) == (5, 5)


@pytest.mark.parametrize("curve", [linear_q, concave_q])
def test_bd_quality_recovers_known_shift(curve: Curve) -> None:
    q = curve(RATES)
    res = bd_quality(RATES, q, RATES, q + 1.0)
    assert res.value == pytest.approx(1.0, abs=1e-6)
    assert res.overlap == pytest.approx((0.1, 2.0))  # reported in bpp


def test_bd_quality_of_rate_shift_on_line() -> None:
    # q = 30 + 6 ln R: needing 0.8x the bits is worth -6 ln 0.8 dB at equal rate.
    res = bd_quality(RATES, linear_q(RATES), RATES * 0.8, linear_q(RATES))
    assert res.value == pytest.approx(-6.0 * math.log(0.8), abs=1e-9)


def test_bd_rate_unsorted_and_invalid_points_dropped() -> None:
    q = concave_q(RATES)
    ref = bd_rate(RATES, q, RATES * 0.8, q)
    perm = [3, 0, 4, 1, 2]
    ar = np.append(RATES[perm], [np.nan, 0.5, -1.0])
    aq = np.append(q[perm], [31.0, np.inf, 32.0])
    res = bd_rate(ar, aq, RATES * 0.8, q)
    assert res.value == pytest.approx(ref.value, abs=1e-12)
    assert res.n_anchor == 5


def test_no_overlap_is_nan() -> None:
    res = bd_rate(RATES, linear_q(RATES), RATES, linear_q(RATES) + 100.0)
    assert math.isnan(res.value) and res.overlap is None and res.overlap_fraction == 0.0
    res = bd_quality(RATES, linear_q(RATES), RATES * 100.0, linear_q(RATES))
    assert math.isnan(res.value) and res.overlap is None


def test_partial_overlap_is_intersection() -> None:
    aq = np.array([30.0, 32.0, 34.0, 36.0, 38.0])
    tq = aq + 4.0  # 34 .. 42
    res = bd_rate(RATES, aq, RATES, tq)
    assert res.overlap == pytest.approx((34.0, 38.0))
    assert res.overlap_fraction == pytest.approx(0.5)
    assert math.isfinite(res.value)
    resq = bd_quality(RATES, aq, RATES * 4.0, aq)  # test spans 0.4 .. 8 bpp
    assert resq.overlap == pytest.approx((0.4, 2.0))


def test_single_point_test_curve() -> None:
    r = 0.7  # between anchor nodes
    res = bd_rate(RATES, linear_q(RATES), [0.9 * r], [float(linear_q(np.array(r)))])
    assert res.method == "single-point" and res.n_test == 1
    assert res.value == pytest.approx(-10.0, abs=1e-9)
    assert res.overlap_fraction == 1.0
    resq = bd_quality(RATES, linear_q(RATES), [r], [float(linear_q(np.array(r))) + 0.5])
    assert resq.value == pytest.approx(0.5, abs=1e-9)
    out = bd_rate(RATES, linear_q(RATES), [5.0], [60.0])
    assert math.isnan(out.value) and out.overlap is None and out.overlap_fraction == 0.0


def test_bd_result_to_dict_is_json() -> None:
    res = bd_rate(RATES, linear_q(RATES), RATES * 0.8, linear_q(RATES))
    d = res.to_dict()
    assert set(d) == {"value", "overlap", "overlap_fraction", "method", "n_anchor", "n_test"}
    json.dumps(d)
    assert isinstance(res, BDResult)


def test_bd_bad_input() -> None:
    with pytest.raises(ValueError, match="anchor_rate and anchor_quality"):
        bd_rate(RATES, linear_q(RATES)[:4], RATES, linear_q(RATES))
    with pytest.raises(ValueError, match="test_rate and test_quality"):
        bd_quality(RATES, linear_q(RATES), RATES[:3], linear_q(RATES))
    with pytest.raises(ValueError, match="anchor curve needs at least 2"):
        bd_rate([1.0, np.nan], [30.0, 31.0], [1.0], [30.5])
    with pytest.raises(ValueError, match="test curve needs at least 1"):
        bd_rate(RATES, linear_q(RATES), [0.0], [30.0])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        bd_rate([0.5, 1.0], [31.0, 31.0], [1.0], [31.0])


def test_bd_merges_tied_points() -> None:
    """A codec's floor repeated at two ladder targets counts once (the tie is averaged)."""
    q = linear_q(RATES)
    once = bd_rate(RATES, q, RATES * 0.8, q)
    tied_r = np.concatenate([RATES[:1], RATES])  # the first point twice, as a floor would be
    tied_q = np.concatenate([q[:1], q])
    assert bd_rate(tied_r, tied_q, RATES * 0.8, q).value == pytest.approx(once.value, abs=1e-9)
    assert bd_rate(RATES, q, tied_r * 0.8, tied_q).value == pytest.approx(once.value, abs=1e-9)


# --- restricted BD-rate (PSNR below the speckle cap) ------------------------------------------

TILT = 0.05  # test curve: ln R_t(q) = ln R_a(q) + TILT * (q - 25), linear in q like the anchor


def tilted(q: np.ndarray) -> np.ndarray:
    """Rates of a test curve whose log-rate gap to linear_q grows with quality."""
    return np.exp((q - 30.0) / 6.0 + TILT * (q - 25.0))


def test_bd_rate_restricted_to_max_quality_hand_computed() -> None:
    # Both curves are lines in (q, ln R), which PCHIP reproduces exactly, so Δ over [lo, hi]
    # is TILT * ((lo + hi) / 2 - 25).
    q = np.array([18.0, 22.0, 26.0, 30.0, 33.0])
    full = bd_rate(RATES, linear_q(RATES), tilted(q), q)
    assert full.overlap == pytest.approx((18.0, 33.0))
    assert full.value == pytest.approx(100.0 * math.expm1(TILT * 0.5), abs=1e-9)  # +2.53 %
    below = bd_rate(RATES, linear_q(RATES), tilted(q), q, max_quality=23.7)
    assert below.overlap == pytest.approx((18.0, 23.7))
    assert below.value == pytest.approx(100.0 * math.expm1(TILT * (20.85 - 25.0)), abs=1e-9)
    assert below.value == pytest.approx(-18.74, abs=0.01)
    assert below.overlap_fraction == pytest.approx(5.7 / 15.0)
    above = bd_rate(RATES, linear_q(RATES), tilted(q), q, max_quality=40.0)
    assert above.value == pytest.approx(full.value) and above.overlap == full.overlap
    empty = bd_rate(RATES, linear_q(RATES), tilted(q), q, max_quality=17.0)  # below q = 18
    assert math.isnan(empty.value) and empty.overlap is None and empty.overlap_fraction == 0.0


def test_bd_rate_restricted_single_point() -> None:
    q = 28.0
    r = 0.8 * math.exp((q - 30.0) / 6.0)  # on the anchor line at 0.8x the bits
    ok = bd_rate(RATES, linear_q(RATES), [r], [q], max_quality=28.5)
    assert ok.method == "single-point" and ok.value == pytest.approx(-20.0, abs=1e-9)
    above = bd_rate(RATES, linear_q(RATES), [r], [q], max_quality=27.7)  # the point lies above
    assert math.isnan(above.value) and above.overlap is None


def test_bd_rate_restricted_bad_input_and_bootstrap() -> None:
    q = np.array([18.0, 22.0, 26.0, 30.0])
    with pytest.raises(ValueError, match="NaN"):
        bd_rate(RATES, linear_q(RATES), tilted(q), q, max_quality=math.nan)
    ar, aq = np.repeat(RATES[:, None], 3, 1), np.repeat(linear_q(RATES)[:, None], 3, 1)
    tr, tq = np.repeat(tilted(q)[:, None], 3, 1), np.repeat(q[:, None], 3, 1)
    with pytest.raises(ValueError, match="BD-rate only"):
        bootstrap_bd(ar, aq, tr, tq, kind="quality", max_quality=25.0)
    out = bootstrap_bd(ar, aq, tr, tq, n_boot=50, max_quality=23.7)  # (18 + 23.7) / 2 = 20.85
    assert out.value == pytest.approx(100.0 * math.expm1(TILT * (20.85 - 25.0)), abs=1e-9)
    assert out.ci_lo == pytest.approx(out.value) and out.n_overlap == 50


# --- report tables on a synthetic R-D pair with known answers ----------------------------------

CAP = 25.3  # restricted range: PSNR <= 25.0 dB


def _records(method: str, curve: str, role: str, rates: np.ndarray, q: np.ndarray,
             n: int = 4) -> list[dict[str, object]]:  # fmt: skip
    """Noise-free per-patch records: every one of n patches at each (rate, PSNR) point."""
    family = "classical" if curve == "jpeg2000" else "learned"
    out: list[dict[str, object]] = []
    for r, v in zip(rates, q, strict=True):
        point = f"{r:g}bpp" if role == "ladder" else f"{v:g}dB"
        name = f"{method}:{point}" if len(rates) > 1 else method
        out += [{"method": name, "family": family, "curve": curve, "point": point, "role": role,
                 "matched_to": "", "index": i, "scene_id": "s", "bpp": float(r),
                 "stream_bpp": float(r), "psnr": float(v)} for i in range(n)]  # fmt: skip
    return out


def test_bd_table_psnr_regimes_and_restricted_rate() -> None:
    from autoenc.evaluation import tables
    from autoenc.evaluation.records import Results
    from autoenc.evaluation.summary import CAP_MARGIN_DB, bd_table, operating_points, regime

    shifted_r = np.array([0.1, 0.25, 0.5, 1.0])
    q_tilt = np.array([18.0, 22.0, 26.0, 30.0])
    recs = [
        *_records("jpeg2000", "jpeg2000", "ladder", RATES, linear_q(RATES)),
        *_records("shift", "shift", "model", shifted_r, linear_q(shifted_r) + 1.0),  # +1 dB
        *_records("tilt", "tilt", "model", tilted(q_tilt), q_tilt),
        *_records("high", "high", "model", np.array([0.8 * math.exp(-2 / 6)]), np.array([28.0])),
        *_records("low", "low", "model", np.array([0.8 * math.exp(-8 / 6)]), np.array([22.0])),
    ]  # fmt: skip
    points = operating_points(Results({"psnr_cap": CAP}, recs), n_boot=50)
    rows = {r.curve: r for r in bd_table(points, "psnr", n_boot=50, max_quality=CAP - 0.3)}
    assert CAP_MARGIN_DB == 0.3 and set(rows) == {"shift", "tilt", "high", "low"}
    # curve + 1 dB: BD-PSNR exactly +1 dB; BD-rate e^(-1/6) - 1 over any quality range
    shift = rows["shift"]
    assert shift.bd_quality.value == pytest.approx(1.0, abs=1e-9)
    assert (shift.bd_quality.ci_lo, shift.bd_quality.ci_hi) == pytest.approx((1.0, 1.0))
    assert shift.bd_rate.value == pytest.approx(100.0 * math.expm1(-1.0 / 6.0), abs=1e-9)
    assert shift.bd_rate_below.value == pytest.approx(shift.bd_rate.value, abs=1e-9)
    assert shift.bd_rate_below.point.overlap == pytest.approx((linear_q(0.1) + 1.0, 25.0))
    # the tilted curve: the full overlap [18, 30] and the restricted [18, 25] differ
    tilt = rows["tilt"]
    assert tilt.bd_rate.value == pytest.approx(100.0 * math.expm1(TILT * (24.0 - 25.0)))
    assert tilt.bd_rate_below.value == pytest.approx(100.0 * math.expm1(TILT * (21.5 - 25.0)))
    # fixed-rate models: defined below the restricted range's top, NaN above it
    assert rows["low"].bd_rate_below.value == pytest.approx(-20.0, abs=1e-9)
    assert math.isnan(rows["high"].bd_rate_below.value)
    assert rows["high"].bd_rate.value == pytest.approx(-20.0, abs=1e-9)
    text = tables.bd_markdown(tables.bd_dicts(list(rows.values())))
    head = text.splitlines()[0]
    assert "BD-PSNR (dB)" in head and "PSNR ≤ 25.00 dB (cap − 0.3)" in head
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()}
    assert cells["high"][4] == tables.EMPTY_BELOW_CAP and cells["low"][4].startswith("-20.0 %")
    assert cells["shift"][5].startswith("1.00 [1.00, 1.00]")
    # regimes: mean PSNR against the cap itself
    assert regime(25.3, CAP) == "below cap" and regime(25.31, CAP) == "above cap"
    assert regime(math.nan, CAP) == "" and regime(30.0, math.nan) == ""
    table = tables.points_table(points, (("psnr", "PSNR", 2),), CAP)
    labels = {line.split(" | ")[0].strip("| "): line.split(" | ")[2] for line in
              table.splitlines()[2:]}  # fmt: skip
    assert labels["jpeg2000:0.1bpp"] == "below cap" and labels["jpeg2000:2bpp"] == "above cap"
    assert labels["high"] == "above cap" and labels["low"] == "below cap"
    assert "regime" not in tables.points_table(points, (("psnr", "PSNR", 2),))


# --- bootstrap ---------------------------------------------------------------------------------


def per_sample(n: int, noise: float, seed: int) -> tuple[np.ndarray, ...]:
    """Anchor on the concave curve; test needs 0.8x the bits; image difficulty is shared."""
    rng = np.random.default_rng(seed)
    difficulty = rng.lognormal(0.0, noise, size=n)  # (N,)
    ar = RATES[:, None] * difficulty[None, :]  # (P, N)
    aq = concave_q(RATES)[:, None] + rng.normal(0.0, 2.0 * noise, size=(RATES.size, n))
    tr = ar * 0.8 * rng.lognormal(0.0, 0.3 * noise, size=ar.shape)
    tq = aq + rng.normal(0.0, noise, size=aq.shape)
    return ar, aq, tr, tq


def test_bootstrap_noiseless_ci_collapses() -> None:
    ar, aq, tr, tq = per_sample(20, 0.0, 0)
    out = bootstrap_bd(ar, aq, tr, tq, n_boot=200)
    assert out.value == pytest.approx(-20.0, abs=1e-9)
    assert out.ci_lo == pytest.approx(out.value, abs=1e-9)
    assert out.ci_hi == pytest.approx(out.value, abs=1e-9)
    assert (out.n_boot, out.n_overlap, out.n, out.n_groups) == (200, 200, 20, 20)


def test_bootstrap_noisy_ci_contains_truth_and_reproducible() -> None:
    ar, aq, tr, tq = per_sample(100, 0.2, 1)
    out = bootstrap_bd(ar, aq, tr, tq, n_boot=500, seed=3)
    assert out.ci_lo < -20.0 < out.ci_hi and out.ci_hi - out.ci_lo > 0.1
    assert out.ci_lo <= out.value <= out.ci_hi
    assert bootstrap_bd(ar, aq, tr, tq, n_boot=500, seed=3) == out
    assert bootstrap_bd(ar, aq, tr, tq, n_boot=500, seed=4).ci_lo != out.ci_lo
    json.dumps(out.to_dict())


def test_bootstrap_quality_and_groups() -> None:
    ar, aq, tr, tq = per_sample(60, 0.2, 2)
    groups = np.repeat([f"scene{i}" for i in range(6)], 10)
    out = bootstrap_bd(ar, aq, tr, tq, kind="quality", n_boot=300, groups=groups)
    assert out.kind == "quality" and out.n_groups == 6 and out.n == 60
    assert out.ci_lo < out.value < out.ci_hi
    single = bootstrap_bd(ar, aq, tr, tq, n_boot=50, groups=np.zeros(60))
    assert single.n_groups == 1 and single.n_boot == 0 and math.isnan(single.ci_lo)


def test_bootstrap_counts_replicates_without_overlap() -> None:
    # A single test point at the anchor's top quality: about half the replicates fall outside.
    n = 50
    rng = np.random.default_rng(5)
    ar = np.repeat(RATES[:, None], n, axis=1)
    aq = np.repeat(linear_q(RATES)[:, None], n, axis=1)
    noise = rng.normal(0.0, 1.0, size=(1, n))
    tq = linear_q(RATES)[-1] + (noise - noise.mean()) - 1e-9  # mean just inside the anchor
    out = bootstrap_bd(ar, aq, np.full((1, n), 1.5), tq, n_boot=400)
    assert out.point.method == "single-point" and math.isfinite(out.value)
    assert 50 < out.n_overlap < 350 and out.n_boot == 400
    assert math.isfinite(out.ci_lo) and out.ci_lo <= out.ci_hi


def test_bootstrap_realistic_shape() -> None:
    """10 noisy points x 100 samples, 1000 replicates: a known -10 % shift is recovered."""
    rng = np.random.default_rng(0)
    r = np.geomspace(0.1, 2.0, 10)[:, None] * rng.lognormal(0.0, 0.2, size=(10, 100))
    q = 30.0 + 6.0 * np.log(r) + rng.normal(0.0, 0.5, size=r.shape)
    out = bootstrap_bd(r, q, r * 0.9, q, n_boot=1000)
    assert out.value == pytest.approx(-10.0, abs=1e-6)
    assert out.n_overlap == 1000


def test_bootstrap_bad_input() -> None:
    ar, aq, tr, tq = per_sample(10, 0.1, 0)
    with pytest.raises(ValueError, match="N=10 samples but test has N=9"):
        bootstrap_bd(ar, aq, tr[:, :9], tq[:, :9])
    with pytest.raises(ValueError, match=r"anchor_rates and anchor_quality must both have shape"):
        bootstrap_bd(ar, aq[:, :9], tr, tq)
    with pytest.raises(ValueError, match="shape"):
        bootstrap_bd(ar[0], aq[0], tr, tq)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_bd(ar, aq, tr, tq, groups=[0, 1])
    with pytest.raises(ValueError, match="kind"):
        bootstrap_bd(ar, aq, tr, tq, kind="psnr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_bd(ar, np.where(aq > 31, np.nan, aq), tr, tq)
    with pytest.raises(ValueError, match="level"):
        bootstrap_bd(ar, aq, tr, tq, level=1.5)


# --- summarize ---------------------------------------------------------------------------------


def test_summarize_matches_numpy_and_ci_contains_mean() -> None:
    v = np.random.default_rng(0).normal(3.0, 2.0, size=200)
    s = summarize(v)
    assert (s.n, s.n_nan) == (200, 0)
    assert s.mean == pytest.approx(np.mean(v))
    assert s.std == pytest.approx(np.std(v, ddof=1))
    assert s.median == pytest.approx(np.median(v))
    assert s.ci_lo < s.mean < s.ci_hi
    assert summarize(v) == s
    assert set(s.to_dict()) >= {"n", "n_nan", "mean", "std", "median", "ci_lo", "ci_hi"}


def test_summarize_nan_dropped_groups_and_empty() -> None:
    v = np.array([1.0, np.nan, 2.0, np.inf, 3.0, 4.0])
    s = summarize(v, groups=["a", "a", "b", "b", "c", "c"], n_boot=200)
    assert (s.n, s.n_nan) == (4, 2) and s.mean == pytest.approx(2.5)
    assert s.ci_lo <= 2.5 <= s.ci_hi
    empty = summarize([])
    assert empty.n == 0 and all(math.isnan(x) for x in (empty.mean, empty.std, empty.ci_lo))
    one = summarize([5.0])
    assert one.mean == 5.0 and math.isnan(one.std) and math.isnan(one.ci_hi)
    with pytest.raises(ValueError, match="groups"):
        summarize([1.0, 2.0], groups=[1])
    with pytest.raises(ValueError, match="1-D"):
        summarize(np.ones((2, 2)))
