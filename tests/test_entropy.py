# Copyright (c) autoenc developers.
# Licensed under the MIT License.

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch

from autoenc.entropy import (
    PRECISION,
    EntropyBottleneck,
    GaussianConditional,
    TableCoder,
    bits,
    get_scale_table,
    lower_bound,
    quantize_pmf,
)

# Far outside every table, up to near the int32 limits the escape code must reach.
OUTLIERS = [2.0**31 - 1024, 1024 - 2.0**31, 1e6, -1e6, 70000.0, -65537.0, 40.0, -40.0]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def laplace_latents(batch: int, size: int = 32) -> torch.Tensor:
    """(B, 3, size, size) Laplacian latents with per-channel location and scale."""
    loc = torch.tensor([0.3, -1.2, 2.0]).view(1, 3, 1, 1)
    scale = torch.tensor([0.4, 1.5, 6.0]).view(1, 3, 1, 1)
    noise = torch.distributions.Laplace(0.0, 1.0).sample((batch, 3, size, size))
    return loc + scale * noise


def fitted_bottleneck(steps: int = 300) -> EntropyBottleneck:
    """Factorized prior fitted to `laplace_latents` by the rate term plus the aux loss."""
    model = EntropyBottleneck(3)
    aux = model.aux_parameters()
    main = [p for p in model.parameters() if all(p is not q for q in aux)]
    optimizer = torch.optim.Adam([{"params": main, "lr": 1e-2}, {"params": aux, "lr": 0.1}])
    for _ in range(steps):
        y = laplace_latents(1)
        _, likelihoods = model(y)
        loss = bits(likelihoods) / y.numel() + model.loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.update(force=True)
    return model


@pytest.fixture(scope="module")
def fitted() -> EntropyBottleneck:
    torch.manual_seed(1)
    # Tiny tensors: extra intra-op threads only spin, and on a busy machine take 10x longer.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fitted_bottleneck()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def gaussian() -> GaussianConditional:
    model = GaussianConditional().eval()
    model.update()
    return model


def gaussian_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, scales, means), each (B, 4, 16, 16), with scales spanning the whole table."""
    shape = (batch, 4, 16, 16)
    scales = torch.exp(torch.empty(shape).uniform_(-3.0, 6.0))
    means = 5 * torch.randn(shape)
    return means + scales * torch.randn(shape), scales, means


# ---------------------------------------------------------------- coder


def test_quantize_pmf_exact_sums_and_no_empty_bins() -> None:
    rng = np.random.default_rng(0)
    pmf = rng.random((6, 50)) ** 8  # many near-zero bins
    pmf[2] = 0.0  # no mass at all: must become uniform, not fail
    lengths = np.array([2, 50, 7, 30, 49, 13])
    counts = quantize_pmf(pmf, lengths)
    valid = np.arange(50) < lengths[:, None]
    assert counts.dtype == np.int32
    np.testing.assert_array_equal(counts.sum(axis=1), 1 << PRECISION)
    assert counts[valid].min() >= 1
    assert not counts[~valid].any()
    assert counts[2, :7].max() - counts[2, :7].min() <= 1
    # Largest remainders: each count is within one of the ideal share of the free mass.
    ideal = pmf[1] / pmf[1].sum() * ((1 << PRECISION) - 50) + 1
    assert np.abs(counts[1] - ideal).max() < 1


def test_quantize_pmf_rejects_bad_lengths() -> None:
    with pytest.raises(ValueError, match="table 1 has 9 bins"):
        quantize_pmf(np.ones((2, 8)), np.array([3, 9]))


def make_coder() -> TableCoder:
    pmf = np.exp(-0.5 * np.arange(-20, 21) ** 2 / np.array([[1.0], [4.0], [0.3]]) ** 2)
    lengths = np.array([12, 41, 5])
    return TableCoder(quantize_pmf(pmf, lengths), lengths, np.array([-5, -20, -2]))


def test_table_coder_round_trip_with_escapes() -> None:
    coder = make_coder()
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, 3, 20_000)
    symbols = np.round(rng.normal(0, [1.0, 4.0, 0.3])[indexes] * 3).astype(np.int32)
    symbols[:6] = [2**31 - 1, -(2**31), 65536, -65537, 6, -6]
    data = coder.encode(symbols, indexes)
    np.testing.assert_array_equal(coder.decode(data, indexes), symbols)
    assert coder.encode(symbols, indexes) == data
    assert coder.encode(np.zeros(0, np.int32), np.zeros(0, np.int64)) == b""


def test_table_coder_bytes_are_golden() -> None:
    """Fixed tables and symbols give fixed bytes: the format is portable and versioned."""
    coder = make_coder()
    indexes = np.arange(300) % 3
    symbols = ((np.arange(300) * 7919) % 23 - 11).astype(np.int32)
    symbols[::50] = 100_000
    data = coder.encode(symbols, indexes)
    assert hashlib.sha256(data).hexdigest()[:16] == GOLDEN_SHA256
    assert len(data) == GOLDEN_LENGTH


GOLDEN_SHA256 = "8322294210237631"
GOLDEN_LENGTH = 336


def test_table_coder_rejects_bad_input() -> None:
    coder = make_coder()
    with pytest.raises(ValueError, match="table index 3 out of range"):
        coder.encode(np.zeros(4, np.int32), np.array([0, 1, 3, 2]))
    with pytest.raises(ValueError, match="got 4 symbols but 3 indexes"):
        coder.encode(np.zeros(4, np.int32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="multiple of 4"):
        coder.decode(b"abc", np.zeros(2, np.int64))
    bad = quantize_pmf(np.ones((1, 4)), np.array([4]))
    bad[0, 0] += 1
    with pytest.raises(ValueError, match="table 0 needs counts"):
        TableCoder(bad, np.array([4]), np.array([0]))
    with pytest.raises(ValueError, match=r"offsets \(T,\); got \(1, 4\), \(1,\), \(2,\)"):
        TableCoder(bad, np.array([4]), np.array([0, 0]))


def test_bits_sums_minus_log2_over_all_likelihoods() -> None:
    y_lik = torch.tensor([0.5, 0.25, 1.0])
    z_lik = torch.full((2, 2), 0.125)
    assert float(bits(y_lik)) == 3.0
    assert float(bits({"y": y_lik, "z": z_lik})) == float(bits([y_lik, z_lik])) == 15.0
    assert bits(y_lik.bfloat16()).dtype == torch.float32


# ---------------------------------------------------------------- factorized prior


def test_factorized_likelihoods_sum_to_one() -> None:
    model = EntropyBottleneck(3).eval()
    with torch.no_grad():  # a non-trivial density: skewed per channel
        for bias in model.biases:
            bias.add_(torch.randn_like(bias))
        model.quantiles[:, 0, 1] = torch.tensor([0.0, 0.25, -3.4])
    offsets = torch.arange(-2000, 2001, dtype=torch.float32)
    # (C, N) -> (1, C, N): every integer offset from each channel's median
    y = (offsets + model.medians[:, None])[None]
    y_hat, likelihoods = model(y)
    torch.testing.assert_close(y_hat, y)
    sums = likelihoods.sum(dim=-1).squeeze(0)
    torch.testing.assert_close(sums, torch.ones(3), atol=1e-4, rtol=0)
    assert (likelihoods.max(dim=-1).values < 0.9).all()  # not a point mass


def test_factorized_noise_in_training_rounding_in_eval() -> None:
    model = EntropyBottleneck(3)
    y = laplace_latents(2, 8)
    y_hat, _ = model(y)
    offset = y_hat - y
    assert offset.abs().max() <= 0.5 and offset.std() > 0.2
    model.eval()
    y_hat, _ = model(y)
    centred = y_hat - model.medians.view(1, 3, 1, 1)
    torch.testing.assert_close(centred, torch.round(centred))
    assert (y_hat - y).abs().max() <= 0.5


def test_factorized_round_trip_exact_with_overflow(fitted: EntropyBottleneck) -> None:
    y = laplace_latents(2, 16)
    y[0, 0, 0, : len(OUTLIERS)] = torch.tensor(OUTLIERS)
    y[1, 2, 5, :4] = torch.tensor([1e5, -1e5, 300.0, -300.0])
    strings = fitted.compress(y)
    assert len(strings) == 2
    y_hat = fitted.decompress(strings, (16, 16))
    assert y_hat.dtype == torch.float32
    assert torch.equal(y_hat, fitted(y)[0])
    assert fitted.compress(y) == strings  # deterministic


def test_factorized_estimated_bits_match_real_bytes(fitted: EntropyBottleneck) -> None:
    y = laplace_latents(4, 32)
    _, likelihoods = fitted(y)
    estimated = float(bits(likelihoods).detach())
    real = 8 * sum(len(s) for s in fitted.compress(y))
    assert abs(real - estimated) <= 0.05 * estimated + 64 * 4
    # The fit is real: far below the ~6 bits/symbol of the untrained prior.
    assert estimated / y.numel() < 3.5


def test_factorized_autocast_keeps_float32(fitted: EntropyBottleneck) -> None:
    y = laplace_latents(1, 8).bfloat16()
    expected_hat, expected = fitted(y.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_hat, likelihoods = fitted(y)
        aux = fitted.loss()
        rate = bits(likelihoods)
    assert likelihoods.dtype == y_hat.dtype == aux.dtype == rate.dtype == torch.float32
    assert torch.equal(likelihoods, expected) and torch.equal(y_hat, expected_hat)


def test_aux_loss_trains_only_the_quantiles() -> None:
    model = EntropyBottleneck(3)
    density_params = [p for p in model.parameters() if p is not model.quantiles]
    density = [p.detach().clone() for p in density_params]
    start = model.quantiles.detach().clone()
    optimizer = torch.optim.Adam(model.aux_parameters(), lr=1.0)
    losses = []
    for _ in range(100):
        loss = model.loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]
    assert (model.quantiles - start).abs().max() > 1.0
    for before, after in zip(density, density_params, strict=True):
        assert after.grad is None and torch.equal(before, after)
    # ... and the rate term never reaches the quantiles.
    model.quantiles.grad = None
    bits(model(laplace_latents(1, 8))[1]).backward()
    assert model.quantiles.grad is None


def test_factorized_state_dict_carries_tables(fitted: EntropyBottleneck) -> None:
    y = laplace_latents(2, 8)
    y[0, 1, 0, 0] = 5000.0
    strings = fitted.compress(y)
    buffer = io.BytesIO()
    torch.save(fitted.state_dict(), buffer)
    buffer.seek(0)

    torch.manual_seed(123)
    fresh = EntropyBottleneck(3).eval()
    fresh.update()  # tables of another shape that loading must replace
    assert fresh._quantized_pmf.shape != fitted._quantized_pmf.shape
    fresh.load_state_dict(torch.load(buffer))
    assert not fresh.update()  # loaded tables are kept, not rebuilt
    assert torch.equal(fresh.decompress(strings, (8, 8)), fitted.decompress(strings, (8, 8)))
    assert fresh.compress(y) == strings


def test_update_is_lazy_unless_forced() -> None:
    model = EntropyBottleneck(2).eval()
    with pytest.raises(RuntimeError, match="call update"):
        model.compress(torch.zeros(1, 2, 4, 4))
    assert model.update() and not model.update()
    with torch.no_grad():
        model.quantiles[:, 0, 2] += 20
    assert model.update(force=True)
    assert int(model._pmf_length.max()) > 20 + 20


def test_factorized_rejects_wrong_channels() -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 3, \.\.\.\), got \(1, 4, 2, 2\)"):
        EntropyBottleneck(3)(torch.zeros(1, 4, 2, 2))


# ---------------------------------------------------------------- Gaussian conditional


@pytest.mark.parametrize("scale", [0.05, 0.11, 0.7, 13.0, 256.0])
def test_gaussian_likelihoods_sum_to_one(gaussian: GaussianConditional, scale: float) -> None:
    y = torch.arange(-3000, 3001, dtype=torch.float32) + 0.3
    means = torch.full_like(y, 0.3)
    _, likelihoods = gaussian(y, torch.full_like(y, scale), means)
    total = float(likelihoods.sum())
    # 1 plus the likelihood bound (1e-9) on each of the 6001 far-tail bins.
    assert total == pytest.approx(1.0, abs=1e-5)
    # Matches torch's Normal CDF where that is accurate (scale bounded at 0.11).
    sigma = max(scale, 0.11)
    normal = torch.distributions.Normal(0.0, sigma)
    expected = normal.cdf(torch.tensor(0.5)) - normal.cdf(torch.tensor(-0.5))
    torch.testing.assert_close(likelihoods[3000], expected, rtol=1e-5, atol=1e-6)


def test_gaussian_build_indexes_rounds_scales_up(gaussian: GaussianConditional) -> None:
    table = get_scale_table()
    scales = torch.exp(torch.empty(1000).uniform_(-4.0, 6.0))
    indexes = gaussian.build_indexes(scales).long()
    assert indexes.dtype == torch.int64 and indexes.min() == 0 and indexes.max() == 63
    inside = scales <= table[-1]
    assert (table[indexes][inside] >= scales[inside]).all()
    above = indexes > 0
    assert (table[indexes - 1][above] < scales[above]).all()


@pytest.mark.parametrize("with_means", [True, False])
def test_gaussian_round_trip_exact_with_overflow(
    gaussian: GaussianConditional, with_means: bool
) -> None:
    y, scales, means = gaussian_inputs()
    y.view(-1)[: len(OUTLIERS)] = torch.tensor(OUTLIERS)
    mu = means if with_means else None
    indexes = gaussian.build_indexes(scales)
    strings = gaussian.compress(y, indexes, mu)
    y_hat = gaussian.decompress(strings, indexes, mu)
    assert torch.equal(y_hat, gaussian(y, scales, mu)[0])
    assert gaussian.compress(y, indexes, mu) == strings


def test_gaussian_estimated_bits_match_real_bytes(gaussian: GaussianConditional) -> None:
    y, scales, means = gaussian_inputs(4)
    _, likelihoods = gaussian(y, scales, means)
    estimated = float(bits(likelihoods))
    real = 8 * sum(len(s) for s in gaussian.compress(y, gaussian.build_indexes(scales), means))
    # Snapping scales up to the table costs a little; it must stay small.
    assert estimated <= real <= 1.05 * estimated + 64 * 4


def test_gaussian_autocast_keeps_float32(gaussian: GaussianConditional) -> None:
    y, scales, means = (t.bfloat16() for t in gaussian_inputs(1))
    _, expected = gaussian(y.float(), scales.float(), means.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_hat, likelihoods = gaussian(y, scales, means)
    assert likelihoods.dtype == y_hat.dtype == torch.float32
    assert torch.equal(likelihoods, expected)


def test_gaussian_state_dict_resizes_tables() -> None:
    small = GaussianConditional(scale_table=[0.2, 1.0, 5.0]).eval()
    small.update()
    y, scales, means = gaussian_inputs(1)
    indexes = small.build_indexes(scales)
    strings = small.compress(y, indexes, means)

    fresh = GaussianConditional().eval()  # 64-entry scale table, no tables yet
    fresh.load_state_dict(small.state_dict())
    assert fresh.scale_table.tolist() == small.scale_table.tolist()
    assert torch.equal(fresh.build_indexes(scales), indexes)
    assert torch.equal(fresh.decompress(strings, indexes, means), small(y, scales, means)[0])


def test_gaussian_scale_gradient_survives_the_bound() -> None:
    model = GaussianConditional().eval()
    scales = torch.full((4,), 0.1, requires_grad=True)  # below the 0.11 bound
    _, likelihoods = model(torch.tensor([0.0, 1.0, -1.0, 1.0]), scales)
    bits(likelihoods).backward()
    # At y = 0 the rate wants a smaller scale: blocked below the bound; elsewhere a larger one.
    assert scales.grad is not None and scales.grad[0] == 0 and (scales.grad[1:] < 0).all()
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    lower_bound(x, 0.5).sum().backward()  # gradient pushing x down is blocked below the bound
    assert x.grad is not None and x.grad.tolist() == [0.0, 1.0]
