# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""CDF 9/7 lifting and the wavelet context codec: inverses, energy, causality of contexts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from autoenc.entropy import StreamDecoder, StreamEncoder, TableCoder, quantize_pmf
from autoenc.entropy.subband_context import conditional_mean, flat, stages, unflat
from autoenc.layers.wavelet import dwt2, idwt2
from autoenc.models import WaveletCodec
from autoenc.models.wavelet import WaveletSynthesis, pack, unpack
from autoenc.tiling import Window


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


def test_lifting_without_autograd_is_the_autograd_path_bit_for_bit() -> None:
    """The in-place, transpose-free lifting (coding, decoding) computes training's floats."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 64, 96, generator=g) * 10
    with torch.no_grad():
        fast = dwt2(x, 4)
        back = idwt2(fast)
    ref = dwt2(x.clone().requires_grad_(), 4)
    assert torch.equal(fast.ll, ref.ll)
    for a, b in zip(fast.details, ref.details, strict=True):
        assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert torch.equal(back, idwt2(ref).detach())


@pytest.mark.parametrize(
    ("cells", "region"),
    [((40, 40), Window(128, 128, 1024, 1024)), ((36, 40), Window(0, 128, 1024, 1024)),
     ((40, 36), Window(128, 0, 1024, 1024)), ((12, 20), Window(37, 5, 100, 300)),
     ((3, 3), Window(1, 1, 94, 94)), ((2, 2), Window(0, 0, 64, 64))],
)  # fmt: skip
def test_region_synthesis_is_the_cut_of_the_whole_synthesis(
    cells: tuple[int, int], region: Window
) -> None:
    """What a tiled decoder keeps, synthesised alone: the very same floats."""
    g_s = WaveletSynthesis(5)
    y = torch.randn(2, 4**5, *cells, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        whole = g_s(y)[..., region.y : region.y + region.h, region.x : region.x + region.w]
        part = g_s.region(y, region)
    assert part.shape == whole.shape
    assert torch.equal(part, whole)
    with pytest.raises(ValueError, match="5 levels need 1024 channels"):
        g_s.region(y[:, :64], region)


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


STEPS = [0.5, 0.1, 0.03]


def _codec(**kwargs: Any) -> WaveletCodec:
    torch.manual_seed(0)
    model = WaveletCodec(levels=3, width=8, steps=STEPS, **kwargs).eval()
    model.update(force=True)
    return model


#: Context layouts: two-stage everywhere; the finest level in one stage at the parent's
#: resolution; integer nets with two one-stage levels, the finest at the parent's resolution.
LAYOUTS = [{}, {"one_stage": 1, "at_parent": 1}, {"integer": True, "one_stage": 2, "at_parent": 1}]


def test_pack_is_aligned_and_inverts() -> None:
    x = torch.rand(2, 1, 32, 64)
    b = dwt2(x, 3)
    y = pack(b)
    assert y.shape == (2, 64, 4, 8)  # 4**3 channels at /8: one value per pixel
    back = unpack(y, 3)
    for u, v in zip(flat(b), flat(back), strict=True):
        assert torch.equal(u, v)
    # alignment: an impulse in image block (1, 2) touches latent cell (1, 2) most
    x = torch.zeros(1, 1, 64, 64)
    x[0, 0, 8 + 3, 16 + 4] = 1.0
    energy = pack(dwt2(x, 3))[0].pow(2).sum(0)
    assert tuple(divmod(int(energy.argmax()), 8)) == (1, 2)
    with pytest.raises(ValueError, match="channels"):
        unpack(torch.zeros(1, 63, 4, 4), 3)


def test_stream_coder_groups_equal_separate_coding() -> None:
    rng = np.random.default_rng(0)
    pmf = rng.random((3, 9))
    lengths = np.array([9, 6, 4])
    coder = TableCoder(quantize_pmf(pmf, lengths), lengths, np.array([-4, -2, -1]))
    groups = [(rng.integers(-9, 9, 50), rng.integers(0, 3, 50)) for _ in range(4)]  # escapes too
    enc = StreamEncoder(coder)
    for sym, idx in groups:
        enc.encode(sym, idx)
    data = enc.finish()
    dec = StreamDecoder(coder, data)
    for sym, idx in groups:
        assert np.array_equal(dec.decode(idx), sym)
    separate = sum(len(coder.encode(s, i)) for s, i in groups)
    assert len(data) < separate  # one flush, not four
    with pytest.raises(ValueError, match="multiple of 4"):
        StreamDecoder(coder, data[:-1])


def test_likelihoods_are_normalised() -> None:
    """Summed over every symbol value, the model's bin masses add up to 1 at each scale."""
    model = _codec()
    gc = model.context.gaussian_conditional
    q = torch.arange(-400, 401, dtype=torch.float32)[:, None]
    for scale in (0.12, 1.0, 7.5, 60.0):
        total = gc._likelihood(q, torch.full_like(q, scale), None).sum()
        assert float(total) == pytest.approx(1.0, abs=1e-5)


def test_eval_reconstruction_is_the_conditional_mean_of_each_bin() -> None:
    model = _codec()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    out = model(x, quality=1)
    step = torch.full((2,), 0.1)
    q = [torch.round(t / 0.1) for t in flat(dwt2(x - 0.5, 3))]
    scales = model.context.scales(model.context._run(q, step), step)
    centre = idwt2(unflat([t * 0.1 for t in q])) + 0.5
    assert float((out["x_hat"] - centre.clamp(0, 1)).abs().max()) > 1e-4  # not the bin centres
    mean = unflat([conditional_mean(a, b) * 0.1 for a, b in zip(q, scales, strict=True)])
    torch.testing.assert_close(out["x_hat"], (idwt2(mean) + 0.5).clamp(0, 1))
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


@pytest.mark.parametrize("layout", LAYOUTS)
def test_contexts_only_use_symbols_coded_before(layout: dict[str, Any]) -> None:
    """Changing one symbol changes no scale of a symbol coded in an earlier stage."""
    model = _codec(**layout)
    x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    step = torch.tensor([0.05])
    q = [torch.round(t / 0.05) for t in flat(dwt2(x - 0.5, 3))]
    a = model.context._run(q, step)
    order = stages(3, model.context.one_stage)
    for k, (bands, anchors) in enumerate(order):
        changed = [t.clone() for t in q]
        band = changed[bands[-1]]
        i, j = (0, 1) if anchors is False else (0, 0)  # (0, 0) is an anchor, (0, 1) is not
        band[0, 0, i, j] += 5
        b = model.context._run(changed, step)
        for earlier in order[:k]:
            for n in earlier[0]:
                m = checker(a[n], earlier[1])
                torch.testing.assert_close(a[n][m], b[n][m], rtol=0, atol=0)
        # ... and something later does depend on it (contexts are used at all)
        if k + 1 < len(order):
            later = [n for st in order[k + 1 :] for n in st[0]]
            assert any(not torch.equal(a[n], b[n]) for n in later)


def checker(t: torch.Tensor, anchors: bool | None) -> torch.Tensor:
    if anchors is None:  # a one-stage level: all of it
        return torch.ones_like(t, dtype=torch.bool)
    i = torch.arange(t.shape[-2])[:, None]
    j = torch.arange(t.shape[-1])[None, :]
    m = (i + j) % 2 == 0
    return (m if anchors else ~m).expand_as(t)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_estimated_bits_match_real_bytes(layout: dict[str, Any]) -> None:
    model = _codec(**layout)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    for quality in range(len(STEPS)):
        est = -torch.log2(model(x, quality=quality)["likelihoods"]["y"]).sum(1) / 8
        coded = model.compress(x, quality)
        assert len(coded["strings"]) == 1  # one stream per item, whatever the stages
        for e, string in zip(est.tolist(), coded["strings"][0], strict=True):
            # tables snap scales up to the next table entry: a little over the estimate
            assert 0.99 * e <= len(string) <= 1.03 * e + 12


@pytest.mark.parametrize("layout", LAYOUTS)
def test_decompress_equals_the_eval_forward(layout: dict[str, Any]) -> None:
    model = _codec(**layout)
    x = torch.rand(2, 1, 32, 64, generator=torch.Generator().manual_seed(5))
    for quality in (0, 2):
        coded = model.compress(x, quality)
        got = model.decompress(coded["strings"], coded["shape"], coded["checksums"], quality)
        want = model(x, quality=quality)["x_hat"]
        torch.testing.assert_close(got["x_hat"], want, rtol=0, atol=1e-6)


def test_rate_rises_with_quality_and_training_steps_span_the_ladder() -> None:
    model = _codec()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(6))
    sizes = [sum(map(len, model.compress(x, q)["strings"][0])) for q in range(len(STEPS))]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    s = model.sample_steps(10_000, torch.device("cpu"))
    assert float(s.min()) < STEPS[-1] and float(s.max()) > STEPS[0]
    half = (STEPS[0] / STEPS[-1]) ** (0.5 / (len(STEPS) - 1))  # half a rung of the ladder
    assert float(s.max()) <= STEPS[0] * half * 1.0001
    assert float(s.min()) >= STEPS[-1] / half / 1.0001


def test_bad_ladders_and_qualities() -> None:
    with pytest.raises(ValueError, match="decrease"):
        WaveletCodec(levels=2, steps=[0.1, 0.5])
    with pytest.raises(ValueError, match="positive"):
        WaveletCodec(levels=2, steps=[0.5, 0.0])
    with pytest.raises(ValueError, match="default_quality"):
        WaveletCodec(levels=2, steps=[0.5, 0.1], default_quality=2)
    model = _codec()
    for bad in (-1, 3, True, 1.0):
        with pytest.raises(ValueError, match="quality"):
            model.step_of(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.rand(1, 1, 36, 32))


def test_cached_stage_masks_serve_training_after_coding() -> None:
    # The checkerboard masks are cached per shape; one first made while coding (inference
    # mode) must still be usable where autograd saves it (torch.where in a training step).
    from autoenc.entropy.subband_coding import checkerboard, positions

    with torch.inference_mode():
        m = checkerboard(6, 10, torch.device("cpu"))
    pos, rest = torch.from_numpy(positions(6, 10, True)), torch.from_numpy(positions(6, 10, False))
    assert not m.is_inference()
    a = torch.zeros(60, dtype=torch.bool).index_fill_(0, pos, True).view(6, 10)
    assert sorted(pos.tolist() + rest.tolist()) == list(range(60))
    assert checkerboard(6, 10, torch.device("cpu")) is m  # cached
    x = torch.ones(1, 1, 6, 10, requires_grad=True)
    torch.where(m.bool(), x * 2, x * 3).sum().backward()
    assert x.grad is not None and float(x.grad.sum()) == 2 * 30 + 3 * 30
    assert int(a.sum()) == 30 and bool((a == m[0, 0].bool()).all())
