# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Synthetic scene determinism and speckle statistics."""

from __future__ import annotations

import numpy as np
import pytest

from autoenc.data.synth import speckle, synth_scene


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
