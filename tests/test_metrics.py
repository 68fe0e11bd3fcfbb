# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Per-sample image and SAR metrics on seeded synthetic speckle with known answers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from autoenc.metrics import (
    MS_SSIM_MIN_SIZE,
    estimate_looks,
    evaluate_batch,
    homogeneous_blocks,
    local_enl,
    ms_ssim,
    psnr,
    psnr_cap,
    rmse_db,
    sar_metrics,
    sigma_db,
    speckle_bias_db,
    ssim,
    unit_to_intensity,
)
from autoenc.metrics.ssim import ssim_and_ms_ssim
from autoenc.sar.normalisation import Normalisation

WINDOW = (-25.0, 5.0)
# Wide enough that L = 1 speckle on -15..-5 dB fields almost never clips (P < 1e-3 per pixel).
WIDE = (-50.0, 10.0)
LOOKS = (1.0, 4.4, 10.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Run single-threaded: on these small tensors intra-op threads only add synchronisation,
    and on a shared 2-core machine they made the file 4x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gamma_speckle(rng: np.random.Generator, looks: float, shape: tuple[int, ...]) -> Tensor:
    """Unit-mean Gamma(L) speckle, float64."""
    return torch.from_numpy(rng.standard_gamma(looks, shape) / looks)


def to_unit(intensity: Tensor, window: tuple[float, float]) -> Tensor:
    db = 10.0 * torch.log10(intensity)
    return ((db - window[0]) / (window[1] - window[0])).clamp(0.0, 1.0).float()


def piecewise_field(rng: np.random.Generator, size: int = 512, batch: int = 2) -> Tensor:
    """Reflectivity in dB: 11x11 constant regions, edges not aligned with 16-px blocks."""
    levels = torch.from_numpy(rng.uniform(-15.0, -5.0, (batch, 1, 11, 11)))
    return F.interpolate(levels, size=(size, size), mode="nearest")


def speckled(rng: np.random.Generator, field_db: Tensor, looks: float) -> Tensor:
    return 10.0 ** (field_db / 10.0) * gamma_speckle(rng, looks, tuple(field_db.shape))


def texture_blocks(rng: np.random.Generator, shape: tuple[int, ...], fraction: float) -> Tensor:
    """Log-normal texture (σ = 1 neper, ~4.3 dB) inside a random ``fraction`` of 16-px blocks."""
    b, c, h, w = shape
    chosen = rng.random((b, c, h // 16, w // 16)) < fraction
    pixels = np.kron(chosen, np.ones((1, 1, 16, 16), dtype=bool))
    return torch.from_numpy(np.where(pixels, np.exp(rng.standard_normal(shape)), 1.0))


def box_blur(x: Tensor) -> Tensor:
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


@pytest.mark.parametrize("looks", LOOKS)
def test_local_enl_of_pure_speckle(looks: float) -> None:
    rng = np.random.default_rng(1)
    intensity = 0.1 * gamma_speckle(rng, looks, (2, 1, 256, 256))
    whole = local_enl(intensity, window=256)  # 65,536 samples per estimate
    assert whole.shape == (2, 1, 1)
    assert torch.allclose(whole, torch.full_like(whole, looks), rtol=0.03)
    blocks = local_enl(intensity)  # (2, 16, 16), 256 samples each
    assert blocks.shape == (2, 16, 16)
    assert abs(float(blocks.mean()) / looks - 1.0) < 0.05  # measured +2.9, +1.2, +1.4 %


@pytest.mark.parametrize("looks", LOOKS)
@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_estimate_looks_piecewise_and_textured(looks: float, fraction: float) -> None:
    rng = np.random.default_rng(2)
    intensity = speckled(rng, piecewise_field(rng), looks)
    intensity = intensity * texture_blocks(rng, tuple(intensity.shape), fraction)
    u = to_unit(intensity, WIDE)
    estimate = estimate_looks(unit_to_intensity(u, WIDE))
    # measured: 0.990, 0.987, 0.983 (pure) and 0.983, 0.993, 0.980 (30 % textured) x L
    assert abs(estimate / looks - 1.0) < (0.07 if fraction == 0.0 else 0.10)


def test_estimate_looks_skips_clipped_and_invalid_blocks() -> None:
    rng = np.random.default_rng(3)
    u = to_unit(0.1 * gamma_speckle(rng, 4.4, (1, 1, 256, 256)), WIDE)
    u[..., :128, :] = 0.0  # top half clipped at vmin
    valid = torch.ones_like(u, dtype=torch.bool)
    valid[..., :, 200:] = False
    u[..., :, 200:] = math.nan
    estimate = estimate_looks(unit_to_intensity(u, WIDE), valid)
    assert abs(estimate / 4.4 - 1.0) < 0.1
    with pytest.raises(ValueError, match="all 256 contain"):
        estimate_looks(unit_to_intensity(torch.zeros(1, 1, 256, 256), WIDE))


@pytest.mark.parametrize("looks", LOOKS)
def test_homogeneous_blocks_keep_pure_speckle(looks: float) -> None:
    rng = np.random.default_rng(4)
    u = to_unit(0.1 * gamma_speckle(rng, looks, (2, 1, 512, 512)), WIDE)
    unclipped = (u > 0) & (u < 1)
    assert bool(unclipped.all()) or looks == 1.0
    mask = homogeneous_blocks(u, WIDE, looks)
    assert mask.shape == (2, 32, 32)
    usable = F.max_pool2d((~unclipped).float(), 16)[:, 0] == 0
    kept = float(mask.sum()) / float(usable.sum())
    assert kept >= 0.98  # measured (k = 1.25): 2003/2004 at L = 1, 2048/2048 at 4.4 and 10
    step = u + (torch.arange(512) % 16 >= 8) * (10.0 / 60.0)  # 10 dB step through each block
    assert float(homogeneous_blocks(step, WIDE, looks).float().mean()) < 0.05


def test_enl_ratio_identical_blurred_noisy() -> None:
    rng = np.random.default_rng(5)
    x = to_unit(speckled(rng, piecewise_field(rng, 256), 4.4), WIDE)
    same = sar_metrics(x.clone(), x, WIDE, 4.4)
    assert torch.allclose(same["enl_ratio"], torch.ones(2), atol=1e-6)
    # edge blocks with mild steps pass k = 1.25 and pull the mean down (measured 3.90, 3.93)
    assert torch.allclose(same["enl"], torch.full((2,), 4.4), rtol=0.15)
    assert (same["homogeneous_fraction"] > 0.3).all()
    blurred = sar_metrics(box_blur(x), x, WIDE, 4.4)
    assert (blurred["enl_ratio"] > 2.0).all()
    noisy = x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert (sar_metrics(noisy, x, WIDE, 4.4)["enl_ratio"] < 0.9).all()
    flat = sar_metrics(torch.full_like(x, 0.5), x, WIDE, 4.4)["enl_ratio"]
    assert torch.isfinite(flat).all() and (flat > 1e6).all()


def test_epi_and_gradient_ratio() -> None:
    rng = np.random.default_rng(6)
    x = to_unit(speckled(rng, piecewise_field(rng, 128), 4.4), WIDE)
    same = sar_metrics(x.clone(), x, WIDE, 4.4)
    assert torch.allclose(same["epi"], torch.ones(2), atol=1e-6)
    assert torch.allclose(same["grad_ratio"], torch.ones(2), atol=1e-6)
    blurred = sar_metrics(box_blur(x), x, WIDE, 4.4)
    assert (blurred["epi"] < 0.9).all() and (blurred["grad_ratio"] < 0.6).all()
    assert (sar_metrics(torch.full_like(x, 0.5), x, WIDE, 4.4)["epi"] == 0).all()
    assert torch.isnan(sar_metrics(x, torch.full_like(x, 0.5), WIDE, 4.4)["epi"]).all()


def test_psnr_and_rmse_of_known_offset() -> None:
    x = 0.9 * torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x_hat = x + 0.01
    assert torch.allclose(psnr(x_hat, x), torch.full((3,), 40.0), atol=1e-3)
    assert torch.allclose(rmse_db(x_hat, x, WINDOW), torch.full((3,), 0.3), rtol=1e-4)
    bias = sar_metrics(x_hat, x, WINDOW, 4.4)["bias_db"]
    assert torch.allclose(bias, torch.full((3,), 0.3), rtol=1e-4)
    assert torch.isinf(psnr(x, x)).all()


@pytest.mark.parametrize(
    ("looks", "sigma", "cap"), [(1.0, 5.57, 14.6), (4.4, 2.19, 22.7), (10.0, 1.41, 26.6)]
)
def test_speckle_limits_match_domain_table_and_monte_carlo(
    looks: float, sigma: float, cap: float
) -> None:
    assert sigma_db(looks) == pytest.approx(sigma, abs=0.005)
    assert psnr_cap(looks, 30.0) == pytest.approx(cap, abs=0.05)
    assert psnr_cap(looks, WINDOW) == psnr_cap(looks, 30.0)
    db = 10.0 * torch.log10(gamma_speckle(np.random.default_rng(7), looks, (2_000_000,)))
    assert float(db.std()) == pytest.approx(sigma_db(looks), rel=0.005)
    assert float(db.mean()) == pytest.approx(speckle_bias_db(looks), abs=0.02)


def test_bias_at_domain_looks() -> None:
    assert speckle_bias_db(4.4) == pytest.approx(-0.51, abs=0.005)


@pytest.mark.parametrize("looks", [4.4, 10.0])
def test_zero_speckle_information_codec_reaches_the_cap(looks: float) -> None:
    field_db, window = -10.0, (-40.0, 20.0)  # 30 dB margins: not one pixel in 131,072 clips
    speckle = gamma_speckle(np.random.default_rng(8), looks, (2, 1, 256, 256))
    x = to_unit(10.0 ** (field_db / 10.0) * speckle, window)
    assert bool(((x > 0) & (x < 1)).all())  # no clipping: the cap assumes none
    mean_db = field_db + speckle_bias_db(looks)  # per-pixel true mean of the dB value
    x_hat = torch.full_like(x, (mean_db - window[0]) / (window[1] - window[0]))
    cap = psnr_cap(looks, window)
    assert torch.allclose(psnr(x_hat, x), torch.full((2,), cap), atol=0.2)


def test_ms_ssim_size_rule_and_ssim() -> None:
    gen = torch.Generator().manual_seed(9)
    small = torch.rand(2, 1, 160, 200, generator=gen)
    assert torch.isnan(ms_ssim(small, small)).all()
    assert MS_SSIM_MIN_SIZE == 176
    edge = torch.rand(2, 1, MS_SSIM_MIN_SIZE - 1, 200, generator=gen)
    assert torch.isnan(ms_ssim(edge, edge)).all()
    x = torch.rand(2, 1, 176, 176, generator=gen)
    value = ms_ssim(x.clone(), x)
    assert value.shape == (2,) and bool(((value > 0) & (value <= 1 + 1e-6)).all())
    assert torch.allclose(value, torch.ones(2), atol=1e-5)
    assert torch.allclose(ssim(x.clone(), x), torch.ones(2), atol=1e-5)
    assert (ssim(box_blur(x), x) < 0.9).all()


def test_invalid_pixels_do_not_change_metrics() -> None:
    rng = np.random.default_rng(10)
    x = to_unit(speckled(rng, piecewise_field(rng, 64), 4.4), WIDE)
    x_hat = box_blur(x)
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[0, :, 10:30, 5:50] = False
    valid[1, :, :, :7] = False
    clean = sar_metrics(x_hat, x, WIDE, 4.4, valid, block=8)
    clean_psnr = psnr(x_hat, x, valid)
    x_bad, x_hat_bad = x.clone(), x_hat.clone()
    x_bad[~valid] = math.nan
    x_hat_bad[~valid] = 7.0
    assert torch.equal(psnr(x_hat_bad, x_bad, valid), clean_psnr)
    dirty = sar_metrics(x_hat_bad, x_bad, WIDE, 4.4, valid, block=8)
    for name, value in clean.items():
        assert torch.allclose(dirty[name], value, equal_nan=True), name
    assert all(bool(torch.isfinite(v).all()) for v in dirty.values())


def test_outputs_stay_on_device_in_float32_under_autocast() -> None:
    x = torch.rand(2, 1, 176, 176, generator=torch.Generator().manual_seed(11))
    x_hat = box_blur(x).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = evaluate_batch(x_hat, x, WINDOW, 4.4)
    assert set(out) == {
        "psnr", "rmse_db", "ssim", "ms_ssim", "enl", "enl_ratio", "homogeneous_fraction",
        "epi", "grad_ratio", "bias_db", "ratio_mean", "ratio_enl",
    }  # fmt: skip
    for name, value in out.items():
        assert value.shape == (2,), name
        assert value.dtype == torch.float32 and value.device == x.device, name


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: psnr(x[:1], x), r"differ in shape"),
        (lambda x: psnr(x[:, 0], x[:, 0]), r"\(B, 1, H, W\).*\(2, 32, 32\)"),
        (lambda x: ssim(x.expand(2, 3, 32, 32), x.expand(2, 3, 32, 32)), r"\(2, 3, 32, 32\)"),
        (lambda x: psnr((x * 255).long(), x), r"torch.int64"),
        (lambda x: psnr(x, x, (x > 0.5).float()), r"shape \(2, 1, 32, 32\).*torch.float32"),
        (lambda x: sar_metrics(x, x, WINDOW, 0.0), r"looks .* got 0.0"),
        (lambda x: sar_metrics(x, x, WINDOW, -1.5), r"got -1.5"),
        (lambda x: sar_metrics(x, x, WINDOW, 4.4, k=-1.0), r"k must .* got -1.0"),
        (lambda x: sar_metrics(x, x, (5.0, -25.0), 4.4), r"\(5.0, -25.0\)"),
        (lambda x: sar_metrics(x, x, WINDOW, 4.4, block=64), r"32x32 px hold no 64x64"),
        (lambda x: rmse_db(x, x, (0.0,)), r"\(vmin_db, vmax_db\)"),  # type: ignore[arg-type]
        (lambda x: psnr_cap(4.4, -30.0), r"got -30.0"),
        (lambda x: sigma_db(math.nan), r"got nan"),
        (lambda x: local_enl(x, window=1), r"got 1"),
    ],
)
def test_bad_input_raises_naming_the_value(call: Callable[[Tensor], object], message: str) -> None:
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(12))
    with pytest.raises(ValueError, match=message):
        call(x)


# --- equivalence with torchmetrics and with a straightforward SAR reference -------------------

TM_SSIM: dict[str, Any] = {
    "gaussian_kernel": True,
    "kernel_size": 11,
    "sigma": 1.5,
    "data_range": 1.0,
}


def _ssim_pairs(batch: int, h: int, w: int) -> dict[str, tuple[Tensor, Tensor]]:
    """Random, speckled, identical and very different pairs (reconstruction, original)."""
    gen = torch.Generator().manual_seed(13)
    rng = np.random.default_rng(13)
    x = torch.rand(batch, 1, h, w, generator=gen)
    field = piecewise_field(rng, max(h, w), batch)[..., :h, :w]
    speckle = to_unit(speckled(rng, field, 4.4), WIDE)
    return {
        "random": (torch.rand(batch, 1, h, w, generator=gen), x),
        "noisy": ((x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1), x),
        "speckle_blurred": (box_blur(speckle), speckle),
        "speckle_resampled": (to_unit(speckled(rng, field, 4.4), WIDE), speckle),
        "identical": (speckle.clone(), speckle),
        "inverted": (1.0 - x, x),
        "constant": (torch.full_like(x, 0.5), x),
        "mixed": (torch.cat([1.0 - x[:1], x[1:]]), x),  # negative terms next to positive ones
    }


@pytest.mark.parametrize("shape", [(2, 176, 190), (1, 211, 224)])
def test_ssim_and_ms_ssim_match_torchmetrics(shape: tuple[int, int, int]) -> None:
    """Per sample against torchmetrics itself, which stays the definition.

    Against torchmetrics run in float64 (the same definition without rounding) the difference
    is float32 rounding: measured <= 2e-7. Against torchmetrics' float32 run (what the package
    called before) it is torchmetrics' own rounding, larger on speckle, where ``σ² = E[x²] − μ²``
    cancels at values near 0.7: measured <= 1.9e-5, and ours is then within 2e-7 of float64.
    MS-SSIM is called exactly as the package called it (torchmetrics' defaults, so its
    ``normalize="relu"``).
    """
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure as tm_ms_ssim,
    )
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    for name, (x_hat, x) in _ssim_pairs(*shape).items():
        ours_ssim, ours_ms = ssim_and_ms_ssim(x_hat, x)
        assert torch.equal(ssim(x_hat, x), ours_ssim), name
        assert torch.allclose(ms_ssim(x_hat, x), ours_ms, atol=0, rtol=0, equal_nan=True), name
        for dtype, atol in ((torch.float64, 1e-6), (torch.float32, 3e-5)):
            a, b = x_hat.to(dtype), x.to(dtype)
            ref = tm_ssim(a, b, reduction="none", **TM_SSIM)
            ref_ms = tm_ms_ssim(a, b, data_range=1.0, reduction="none")
            assert isinstance(ref, Tensor)
            assert torch.allclose(ours_ssim.double(), ref.double(), rtol=0, atol=atol), name
            assert torch.equal(torch.isnan(ours_ms), torch.isnan(ref_ms)), name
            ok = torch.isnan(ref_ms) | ((ours_ms.double() - ref_ms.double()).abs() <= atol)
            assert bool(ok.all()), (name, dtype, ours_ms, ref_ms)


def test_ms_ssim_clips_negative_terms_like_torchmetrics_default() -> None:
    """torchmetrics' default ``normalize="relu"``: a negative image scores 0, not NaN."""
    x = torch.rand(2, 1, 192, 192, generator=torch.Generator().manual_seed(17))
    assert bool((ssim(1.0 - x, x) < -0.9).all())
    assert torch.equal(ms_ssim(1.0 - x, x), torch.zeros(2))


def test_ssim_uses_the_training_loss_setting() -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    from autoenc.metrics.image import SSIM_KWARGS

    x_hat, x = _ssim_pairs(2, 64, 64)["noisy"]
    ref = tm_ssim(x_hat.double(), x.double(), data_range=1.0, reduction="none", **SSIM_KWARGS)
    assert isinstance(ref, Tensor)
    assert torch.allclose(ssim(x_hat, x).double(), ref, rtol=0, atol=1e-6)


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU works through the batch in chunks; one whole-batch pass (as on CUDA) agrees."""
    import autoenc.metrics.image as image

    rng = np.random.default_rng(14)
    x = to_unit(speckled(rng, piecewise_field(rng, 192, 5), 4.4), WIDE)
    x_hat, valid = box_blur(x), torch.from_numpy(rng.random(tuple(x.shape)) > 0.01)
    chunked = evaluate_batch(x_hat, x, WIDE, 4.4, valid)
    monkeypatch.setattr(image, "_CPU_CHUNK", 64)
    whole = evaluate_batch(x_hat, x, WIDE, 4.4, valid)
    for name, value in chunked.items():
        assert torch.allclose(value, whole[name], rtol=1e-6, atol=1e-7, equal_nan=True), name


def _reference_sar(
    x_hat: Tensor,
    x: Tensor,
    window: tuple[float, float],
    looks: float,
    valid: Tensor,
    w: int,
    k: float,
) -> dict[str, Tensor]:
    """sar_metrics written plainly: float64 throughout, conv2d filters and pooled block masks."""
    x_hat, x = x_hat.double().clamp(0, 1), x.double()
    x_hat, x = torch.where(valid, x_hat, 0.0), torch.where(valid, x, 0.0)
    h, wd = x.shape[-2] // w * w, x.shape[-1] // w * w

    def intensity(u: Tensor) -> Tensor:
        return torch.pow(10.0, (window[0] + u.clamp(0, 1) * (window[1] - window[0])) / 10.0)

    def stats(i: Tensor) -> tuple[Tensor, Tensor]:
        i = i[..., :h, :wd]
        mean = F.avg_pool2d(i, w)
        up = mean.repeat_interleave(w, dim=-2).repeat_interleave(w, dim=-1)
        return mean[:, 0], F.avg_pool2d((i - up).square(), w)[:, 0] * (w * w / (w * w - 1))

    def enl(mean: Tensor, var: Tensor) -> Tensor:
        return mean.square() / torch.maximum(var, mean.square() / 1e12)

    def masked_mean(t: Tensor, m: Tensor) -> Tensor:
        return torch.where(m, t, 0.0).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3))

    i, i_hat = intensity(x), intensity(x_hat)
    mean, var = stats(i)
    bad = (~valid | (x <= 0) | (x >= 1))[..., :h, :wd].double()
    usable = F.max_pool2d(bad, w)[:, 0] == 0
    mask = usable & (var.sqrt() <= mean * (k / math.sqrt(looks)))
    count = mask.sum(dim=(1, 2)).double()
    enl_x = torch.where(mask, enl(mean, var), 0.0).sum(dim=(1, 2)) / count
    enl_hat = torch.where(mask, enl(*stats(i_hat)), 0.0).sum(dim=(1, 2)) / count
    interior = F.max_pool2d((~valid).double(), 3, stride=1) == 0
    lap = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=torch.float64)[None, None]
    a, b = F.conv2d(x, lap), F.conv2d(x_hat, lap)
    a = torch.where(interior, a - masked_mean(a, interior).view(-1, 1, 1, 1), 0.0)
    b = torch.where(interior, b - masked_mean(b, interior).view(-1, 1, 1, 1), 0.0)
    va, vb = a.square().sum(dim=(1, 2, 3)), b.square().sum(dim=(1, 2, 3))
    epi = torch.where(
        va > 0, torch.where(vb > 0, (a * b).sum(dim=(1, 2, 3)) / (va * vb).sqrt(), 0.0), math.nan
    )
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)
    sobel = torch.stack([sx, sx.T])[:, None]

    def gradient(t: Tensor) -> Tensor:
        g = F.conv2d(t, sobel).square().sum(dim=1, keepdim=True).sqrt()
        return torch.where(interior, g, 0.0).sum(dim=(1, 2, 3))

    g = gradient(x)
    ratio = i / i_hat
    pixels = mask.repeat_interleave(w, dim=-2).repeat_interleave(w, dim=-1)[:, None]
    r = ratio[..., :h, :wd]
    n = pixels.sum(dim=(1, 2, 3)).double()
    r_mean = torch.where(pixels, r, 0.0).sum(dim=(1, 2, 3)) / n
    r_var = torch.where(pixels, (r - r_mean.view(-1, 1, 1, 1)).square(), 0.0).sum(dim=(1, 2, 3))
    return {
        "enl": enl_x,
        "enl_ratio": enl_hat / enl_x,
        "homogeneous_fraction": count / mask[0].numel(),
        "epi": epi,
        "grad_ratio": torch.where(g > 0, gradient(x_hat) / g, math.nan),
        "bias_db": (window[1] - window[0]) * masked_mean(x_hat - x, valid),
        "ratio_mean": masked_mean(ratio, valid),
        "ratio_enl": enl(r_mean, r_var / (n - 1)),
    }


@pytest.mark.parametrize(("size", "block"), [((256, 256), 16), ((200, 184), 16), ((72, 64), 8)])
def test_sar_metrics_match_plain_float64_reference(size: tuple[int, int], block: int) -> None:
    """Within 1e-5 relative (1e-7 absolute near 0, where EPI of unrelated images sits)."""
    rng = np.random.default_rng(15)
    field = piecewise_field(rng, max(size), 3)[..., : size[0], : size[1]]
    x = to_unit(speckled(rng, field, 4.4), WIDE)
    holes = torch.ones_like(x, dtype=torch.bool)
    holes[0, :, 10:60, 5:90] = False
    sparse = torch.from_numpy(rng.random(tuple(x.shape)) > 0.02)
    recon = {
        "identical": x.clone(),
        "blurred": box_blur(x),
        "noisy": x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(15)),
        "flat": torch.full_like(x, 0.5),
        "unrelated": torch.rand(x.shape, generator=torch.Generator().manual_seed(16)),
    }
    for name, x_hat in recon.items():
        for valid in (None, holes, sparse):
            got = sar_metrics(x_hat, x, WIDE, 4.4, valid, block=block)
            mask = torch.ones_like(x, dtype=torch.bool) if valid is None else valid
            ref = _reference_sar(x_hat, x, WIDE, 4.4, mask, block, 1.25)
            for metric, value in got.items():
                expected = ref[metric].float()
                assert torch.allclose(value, expected, rtol=1e-5, atol=1e-7, equal_nan=True), (
                    name,
                    metric,
                    value,
                    expected,
                )


# --- the metrics' dB and intensity are Normalisation's (issue 13: each conversion once) -------


def test_metric_db_and_intensity_are_normalisation_s() -> None:
    """unit_to_intensity is Normalisation.inverse, rmse_db and bias_db its dB differences."""
    gen = torch.Generator().manual_seed(21)
    x = torch.rand(3, 1, 48, 48, generator=gen)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.0)
    for window in (WINDOW, WIDE, (-24.3, 7.1)):
        n = Normalisation(*window)
        got = unit_to_intensity(x, window)
        assert got.dtype == torch.float64
        assert torch.equal(got, n.inverse(x.double()))  # the same tensor path, bit for bit
        assert torch.equal(got, unit_to_intensity(x, n))  # a record or a pair: one window
        db = n.from_unit(x.double().numpy())  # Normalisation's numpy dB, float64
        np.testing.assert_allclose(10.0 * np.log10(got.numpy()), db, rtol=0, atol=1e-9)
        err = n.from_unit(x_hat.double().numpy()) - db  # (B, 1, H, W) dB
        rmse = np.sqrt(np.mean(err**2, axis=(1, 2, 3)))
        np.testing.assert_allclose(rmse_db(x_hat, x, window).numpy(), rmse, rtol=1e-6)
        bias = sar_metrics(x_hat, x, window, 4.4)["bias_db"].numpy()
        np.testing.assert_allclose(bias, err.mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-6)


def test_a_normalisation_window_gives_the_pair_s_numbers() -> None:
    rng = np.random.default_rng(22)
    x = to_unit(speckled(rng, piecewise_field(rng, 64), 4.4), WIDE)
    x_hat, truth = box_blur(x), box_blur(box_blur(x))
    pair = evaluate_batch(x_hat, x, WIDE, 4.4, truth=truth)
    record = evaluate_batch(x_hat, x, Normalisation(*WIDE), 4.4, truth=truth)
    assert pair.keys() == record.keys()
    for name, value in pair.items():
        assert torch.equal(value.nan_to_num(-1.0), record[name].nan_to_num(-1.0)), name
    assert psnr_cap(4.4, Normalisation(*WIDE)) == psnr_cap(4.4, WIDE) == psnr_cap(4.4, 60.0)
