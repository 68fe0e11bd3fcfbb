# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Speckle from the imaging chain: ENL, autocorrelation against the analytic PSF, marginals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from autoenc.data.speckle import PRODUCTS, SpeckleModel, chain_speckle, product
from autoenc.data.speckle_stats import db_residual, lag_correlation

FLAT = np.full((768, 768), 0.05, dtype=np.float32)


def _homogeneous(name: str, seed: int = 0) -> NDArray[np.float32]:
    return chain_speckle(FLAT, PRODUCTS[name], np.random.default_rng(seed))


@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_enl_and_mean_of_homogeneous_area(name: str) -> None:
    i = _homogeneous(name).astype(np.float64)
    assert i.mean() == pytest.approx(0.05, rel=0.02)
    enl = i.mean() ** 2 / i.var()
    assert enl == pytest.approx(PRODUCTS[name].looks, rel=0.06)


@pytest.mark.parametrize("name", sorted(PRODUCTS))
@pytest.mark.parametrize("axis", [0, 1])
def test_intensity_autocorrelation_matches_the_impulse_response(name: str, axis: int) -> None:
    model = PRODUCTS[name]
    i = _homogeneous(name, seed=1).astype(np.float64)
    for lag in (1, 2):
        want = model.intensity_autocorrelation(lag, axis)
        assert lag_correlation(i, lag, axis) == pytest.approx(want, abs=0.02), (name, lag)


def test_analytic_values_of_the_products() -> None:
    grdh, slc, white = PRODUCTS["grdh"], PRODUCTS["slc-intensity"], PRODUCTS["white"]
    assert 0.7 < grdh.intensity_autocorrelation(1, 1) < 0.8
    assert slc.intensity_autocorrelation(1, 0) < 0.15
    assert white.intensity_autocorrelation(1, 0) == 0.0
    # An unweighted, critically sampled response is exactly white (sinc zeros at integers).
    ideal = SpeckleModel("ideal", 1.0, (1.0, 1.0), hamming=1.0)
    assert ideal.intensity_autocorrelation(1, 0) == pytest.approx(0.0, abs=1e-12)


def test_grdh_db_residual_matches_real_iw_grdh() -> None:
    """The Done-when target: lag-1 of the dB residual 0.6-0.75 in both directions."""
    r = db_residual(_homogeneous("grdh", seed=2))
    for axis in (0, 1):
        assert 0.6 <= lag_correlation(r, 1, axis) <= 0.75
        assert 0.05 <= lag_correlation(r, 2, axis) <= 0.3
    slc = db_residual(_homogeneous("slc-intensity", seed=2))
    assert abs(lag_correlation(slc, 1, 1)) < 0.15


def test_single_look_marginal_is_exponential() -> None:
    """Kolmogorov-Smirnov against Exp(1) on samples 4 px apart (nearly independent)."""
    i = _homogeneous("slc-intensity", seed=3)[::4, ::4].astype(np.float64).ravel() / 0.05
    x = np.sort(i)
    n = x.size
    cdf = 1.0 - np.exp(-x)
    d = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert d < 1.63 / math.sqrt(n)  # 1 % level
    # ... and a Gamma(4.4) marginal is not exponential: the test can fail.
    g = _homogeneous("grdh", seed=3)[::4, ::4].astype(np.float64).ravel() / 0.05
    xg = np.sort(g)
    dg = np.max(np.abs(np.arange(1, n + 1) / n - (1.0 - np.exp(-xg))))
    assert dg > 10 / math.sqrt(n)


@pytest.mark.parametrize("looks", [1.0, 2.0, 4.4, 4.9, 7.25])
def test_look_weights_give_the_product_enl(looks: float) -> None:
    w = SpeckleModel("x", looks).look_weights()
    assert w.mean() == pytest.approx(1.0)
    assert w.sum() ** 2 / np.sum(w**2) == pytest.approx(looks, rel=1e-9)
    assert len(w) == math.ceil(looks)


def test_reflectivity_edges_and_targets_are_kept_on_average() -> None:
    """E[I] follows the reflectivity: a step edge and a bright target keep their levels."""
    r = np.full((256, 256), 0.01, dtype=np.float32)
    r[:, 128:] = 0.1
    mean = np.mean([chain_speckle(r, PRODUCTS["grdh"], np.random.default_rng(s))
                    for s in range(8)], axis=0)  # fmt: skip
    assert mean[:, 20:100].mean() == pytest.approx(0.01, rel=0.03)
    assert mean[:, 150:240].mean() == pytest.approx(0.1, rel=0.03)


def test_product_overrides_and_errors() -> None:
    m = product("grdh", looks=3.0, oversampling=2.5)
    assert (m.looks, m.oversampling, m.name) == (3.0, (2.5, 2.5), "grdh")
    with pytest.raises(ValueError, match="unknown product 'grd'"):
        product("grd")
    with pytest.raises(ValueError, match="looks must be >= 1"):
        SpeckleModel("x", 0.5)
    with pytest.raises(ValueError, match="oversampling"):
        SpeckleModel("x", 4.4, (0.5, 2.0))
    with pytest.raises(ValueError, match="reflectivity"):
        chain_speckle(np.full((8, 8), -1.0), PRODUCTS["grdh"], np.random.default_rng(0))
