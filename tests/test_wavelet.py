# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""CDF 9/7 lifting and the wavelet context codec: inverses, energy, causality of contexts."""

from __future__ import annotations

import pytest
import torch

from autoenc.layers.wavelet import Subbands, dwt2, idwt2
from autoenc.models.wavelet import WaveletContextCodec, conditional_mean


@pytest.mark.parametrize(("levels", "shape"), [(1, (2, 1, 8, 6)), (3, (1, 2, 32, 48)),
                                                (5, (2, 1, 64, 96))])  # fmt: skip
def test_inverse_is_exact(levels: int, shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    bands = dwt2(x, levels)
    assert bands.levels == levels
    for k, level in enumerate(bands.details):  # coarsest first
        f = 2 ** (levels - k)
        assert all(b.shape == (*shape[:2], shape[2] // f, shape[3] // f) for b in level)
    assert bands.ll.shape[-2:] == (shape[2] // 2**levels, shape[3] // 2**levels)
    torch.testing.assert_close(idwt2(bands), x, rtol=0, atol=1e-12)


def test_near_orthonormal_and_constant_in_ll_only() -> None:
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, 1, 256, 256, dtype=torch.float64, generator=g)
    bands = dwt2(noise, 4)
    variances = [float(b.var()) for level in bands.details for b in level]
    assert all(0.9 < v < 1.3 for v in variances), variances  # white noise keeps its variance
    const = dwt2(torch.full((1, 1, 32, 32), 0.7, dtype=torch.float64), 3)
    assert float(const.ll.mean()) == pytest.approx(0.7 * 8)  # DC gain 2 per level
    assert max(float(b.abs().max()) for level in const.details for b in level) < 1e-12


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="multiples of 2\\*\\*levels"):
        dwt2(torch.zeros(1, 1, 40, 32), 4)
    with pytest.raises(ValueError, match="levels"):
        dwt2(torch.zeros(1, 1, 8, 8), 0)


def _codec() -> WaveletContextCodec:
    torch.manual_seed(0)
    return WaveletContextCodec(levels=3, width=8).eval()


def test_eval_reconstruction_is_the_conditional_mean_of_each_bin() -> None:
    model = _codec()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    step = torch.tensor([0.1, 0.1])
    out = model(x, step)
    q = model._quantise(x, step)
    scales = model._scales(q, step)
    centre = idwt2(q.map(lambda t: t * 0.1)) + 0.5
    assert float((out["x_hat"] - centre).abs().max()) > 1e-4  # not the bin centres
    mean = Subbands(
        conditional_mean(q.ll, scales.ll),
        tuple(tuple(conditional_mean(a, b) for a, b in zip(lq, ls, strict=True))
              for lq, ls in zip(q.details, scales.details, strict=True)),  # type: ignore[misc]
    )  # fmt: skip
    torch.testing.assert_close(out["x_hat"], idwt2(mean.map(lambda t: t * 0.1)) + 0.5)
    assert float((out["x_hat"] - x).abs().max()) < 0.2
    lik = out["likelihoods"]["y"]
    assert lik.shape == (2, 32 * 32) and bool(((lik > 0) & (lik <= 1)).all())


def test_conditional_mean_matches_numerical_integration() -> None:
    q = torch.tensor([0.0, 1.0, -2.0, 5.0, -5.0, 300.0])
    scale = torch.tensor([0.7, 1.0, 3.0, 1.0, 1.0, 1.0])
    got = conditional_mean(q, scale)
    for i in range(5):
        y = torch.linspace(float(q[i]) - 0.5, float(q[i]) + 0.5, 200_001, dtype=torch.float64)
        w = torch.exp(-0.5 * (y / float(scale[i])) ** 2)
        assert float(got[i]) == pytest.approx(float((y * w).sum() / w.sum()), abs=2e-4)
    assert float(got[5]) == 300.0  # mass underflows: the bin centre


def test_contexts_only_use_symbols_coded_before() -> None:
    """Changing a second-half symbol of the finest HH band changes no scale coded before it."""
    model = _codec()
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    step = torch.tensor([0.05])
    q = model._quantise(x, step)
    a = model._scales(q, step)
    hl, lh, hh = q.details[-1]
    hh2 = hh.clone()
    hh2[0, 0, 0, 1] += 5  # (0, 1) is a non-anchor
    q2 = Subbands(q.ll, (*q.details[:-1], (hl, lh, hh2)))
    b = model._scales(q2, step)
    torch.testing.assert_close(a.ll, b.ll)
    for la, lb in zip(a.details[:-1], b.details[:-1], strict=True):
        for u, v in zip(la, lb, strict=True):
            torch.testing.assert_close(u, v)
    anchors = torch.zeros(16, 16, dtype=torch.bool)
    anchors[0::2, 0::2] = anchors[1::2, 1::2] = True
    for u, v in zip(a.details[-1], b.details[-1], strict=True):
        torch.testing.assert_close(u[0, 0][anchors], v[0, 0][anchors])


def test_estimated_bits_match_real_bytes() -> None:
    model = _codec()
    model.gaussian_conditional.update(force=True)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    for step in (0.05, 0.5):
        est = -torch.log2(model(x, torch.full((2,), step))["likelihoods"]["y"]).sum(1) / 8
        coded = model.compress(x, step)
        real = [sum(len(g[i]) for g in coded["strings"]) for i in range(2)]
        groups = len(coded["strings"])
        for e, r in zip(est.tolist(), real, strict=True):
            # each group's string flushes its coder state: a few bytes per group
            assert 0.98 * e <= r <= 1.02 * e + 6 * groups


def test_decompress_equals_the_eval_forward() -> None:
    model = _codec()
    model.gaussian_conditional.update(force=True)
    x = torch.rand(2, 1, 32, 64, generator=torch.Generator().manual_seed(5))
    for step in (0.03, 0.4):
        coded = model.compress(x, step)
        assert len(coded["strings"]) == 2 * (1 + 3 * 3)
        got = model.decompress(coded["strings"], coded["shape"], step)["x_hat"]
        want = model(x, torch.full((2,), step))["x_hat"]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
