# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Synthetic scene determinism and speckle statistics."""

from __future__ import annotations

import numpy as np
import pytest

from autoenc.data.speckle import PRODUCTS
from autoenc.data.synth import (
    BRIGHT_DB,
    DARK_DB,
    SceneContent,
    reflectivity_db,
    speckle,
    synth_scene,
)


def test_deterministic_by_seed() -> None:
    a_i, a_r = synth_scene(128, rng=np.random.default_rng(3))
    b_i, b_r = synth_scene(128, rng=np.random.default_rng(3))
    c_i, _ = synth_scene(128, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a_i, b_i)
    np.testing.assert_array_equal(a_r, b_r)
    assert not np.array_equal(a_i, c_i)


@pytest.mark.parametrize("looks", [1.0, 4.4])
def test_speckle_enl(looks: float) -> None:
    r = np.full((512, 512), 0.05, dtype=np.float32)
    s = speckle(r, looks, np.random.default_rng(0)).astype(np.float64)
    enl = s.mean() ** 2 / s.var()
    assert enl == pytest.approx(looks, rel=0.05)
    assert s.mean() == pytest.approx(0.05, rel=0.02)


def test_scene_values_and_point_targets() -> None:
    inten, refl = synth_scene((192, 256), looks=4.4, rng=np.random.default_rng(1))
    assert inten.shape == refl.shape == (192, 256)
    assert inten.dtype == refl.dtype == np.float32
    assert np.all(np.isfinite(inten)) and np.all(inten > 0)
    assert np.all(np.isfinite(refl))
    assert refl.max() > np.median(refl) + 10.0


def test_bad_args() -> None:
    with pytest.raises(ValueError):
        speckle(np.ones((4, 4)), 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        synth_scene(4, rng=np.random.default_rng(0))


@pytest.mark.parametrize(("bright", "dark"), [(0.002, 0.03), (0.01, 0.1), (0.0, 0.0)])
def test_dynamic_range_shares_are_as_configured(bright: float, dark: float) -> None:
    content = SceneContent(bright_fraction=bright, dark_fraction=dark)
    db = reflectivity_db(384, np.random.default_rng(11), content)
    n = db.size
    got_bright = float((db > BRIGHT_DB).mean())
    # exact up to the last target placed (a ship is at most 2 x 8 px)
    assert bright <= got_bright <= bright + 16 / n
    assert float((db < DARK_DB).mean()) == pytest.approx(dark, rel=0.05, abs=1e-4)
    if bright:
        assert db.max() > 15.0  # targets reach far above the window


def test_edges_are_sub_pixel_with_no_label_grid() -> None:
    """Region boundaries fall at any column (no 4-px staircase) and are ramps, not steps."""
    db = reflectivity_db(512, np.random.default_rng(12), SceneContent(0.0, 0.0))
    d = np.diff(db.astype(np.float64), axis=1)
    rows, cols = np.nonzero(np.abs(d) > 2.0)
    share = np.bincount(cols % 4, minlength=4) / cols.size
    assert cols.size > 200
    assert np.all(share > 0.15) and np.all(share < 0.35), share
    # A hard step has no neighbour step in the same direction; anti-aliased edges do.
    inner = (cols > 0) & (cols < d.shape[1] - 1)
    r, c = rows[inner], cols[inner]
    same = (np.sign(d[r, c - 1]) == np.sign(d[r, c])) & (
        np.abs(d[r, c - 1]) > 0.1 * np.abs(d[r, c])
    )
    same |= (np.sign(d[r, c + 1]) == np.sign(d[r, c])) & (
        np.abs(d[r, c + 1]) > 0.1 * np.abs(d[r, c])
    )
    assert same.mean() > 0.9


def test_products_change_the_speckle_not_the_truth() -> None:
    rng = lambda: np.random.default_rng(13)  # noqa: E731
    g_i, g_t = synth_scene(128, rng=rng(), model=PRODUCTS["grdh"])
    w_i, w_t = synth_scene(128, rng=rng(), model=PRODUCTS["white"])
    np.testing.assert_array_equal(g_t, w_t)
    assert not np.array_equal(g_i, w_i)
    with pytest.raises(ValueError, match="dark_fraction"):
        SceneContent(dark_fraction=0.9)
