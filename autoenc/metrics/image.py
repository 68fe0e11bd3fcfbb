# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Per-sample image metrics on the normalised dB window: PSNR, RMSE, SSIM, MS-SSIM, EPI.

Every function takes ``x_hat`` (reconstruction) and ``x`` (original) as ``(B, 1, H, W)`` float
tensors in the unit window ``[0, 1]``, where ``u`` stands for ``vmin_db + u * (vmax_db - vmin_db)``
(see :mod:`autoenc.sar.normalisation`), and returns one value per sample, ``(B,)`` float32, on the
input's device. ``x_hat`` is clamped to ``[0, 1]`` first, because a decoder output outside
the window cannot be stored. Work is done in float32 with autocast off (sums in float64), so
the numbers do not depend on AMP settings.

The optional ``valid`` mask, ``(B, 1, H, W)`` bool, marks usable pixels (``None``: all); masked
metrics ignore whatever the other pixels hold, NaN included. SSIM and MS-SSIM are window
statistics and take no mask: fill invalid pixels identically in ``x`` and ``x_hat`` first.

SSIM and MS-SSIM are torchmetrics' definitions, re-implemented here only for speed (a separable
Gaussian instead of an 11x11 convolution; see :func:`_blur`): same kernel, reflect padding and
crop, constants and scale weights, agreeing per sample to float32 rounding
(tests/test_metrics.py compares them with torchmetrics directly).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

# torchmetrics' Gaussian SSIM with sigma 1.5 (kernel side int(3.5 * sigma + 0.5) * 2 + 1 = 11),
# data range 1, k1 = 0.01, k2 = 0.03: the project's one SSIM setting (SSIM_KWARGS below, also the
# training loss's and the Lightning metrics'). MS-SSIM adds torchmetrics' defaults: these scale
# weights, 2x2 average pooling between scales and ``normalize="relu"`` (negative terms -> 0).
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)
#: The SSIM setting as torchmetrics' keyword arguments (with ``data_range=1.0``), used by the
#: loss (:func:`autoenc.task.ssim_fp32`), the Lightning metrics and the tests' references.
SSIM_KWARGS: Mapping[str, Any] = MappingProxyType(
    {"gaussian_kernel": True, "kernel_size": 2 * _SSIM_RADIUS + 1, "sigma": _SSIM_SIGMA}
)
_SSIM_C1 = (0.01 * 1.0) ** 2
_SSIM_C2 = (0.03 * 1.0) ** 2
_MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

# torchmetrics' MS-SSIM (5 scales, 11-px Gaussian) requires ``side // 16 > 10`` for both sides,
# i.e. side >= 176; smaller images get NaN rather than a differently configured score.
# (The error text says "larger than 160", but torchmetrics 1.9 still raises for 161..175 px.)
MS_SSIM_MIN_SIZE = 176


def _gaussian_taps() -> tuple[float, ...]:
    """The 1-D SSIM kernel built as torchmetrics' ``_gaussian`` does it, in float32.

    Returned as Python floats (exactly the float32 values) so the filter can pass them as
    scalars; torchmetrics' 2-D kernel is the outer product of this kernel with itself.
    """
    dist = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float32)
    gauss = torch.exp(-torch.pow(dist / _SSIM_SIGMA, 2) / 2)
    return tuple((gauss / gauss.sum()).tolist())


_SSIM_TAPS = _gaussian_taps()
# Samples per pass and intra-op thread on CPU (see _sample_chunks): SSIM's five filtered planes
# of two 256² samples (~3 MB) stay in cache through the filter's 22 passes; a whole batch of 8
# at once ran ~1.8x slower for SSIM and ~1.4x for the SAR metrics (1 thread, AMD EPYC).
_CPU_CHUNK = 2


def _no_autocast(x: Tensor) -> torch.autocast:
    return torch.autocast(device_type=x.device.type, enabled=False)


def _check_image(name: str, t: Tensor) -> None:
    """Raise unless ``t`` is a non-empty floating-point ``(B, 1, H, W)`` tensor."""
    if not isinstance(t, Tensor) or t.ndim != 4 or t.shape[1] != 1:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a (B, 1, H, W) tensor, got {shape}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")


def _check_valid(valid: Tensor | None, like: Tensor) -> Tensor:
    """Return the mask (all True for None), raising unless it is bool and shaped like ``like``."""
    if valid is None:
        return torch.ones_like(like, dtype=torch.bool)
    if valid.shape != like.shape or valid.dtype != torch.bool or valid.device != like.device:
        raise ValueError(
            f"valid must be a bool tensor of shape {tuple(like.shape)} on {like.device}, "
            f"got {valid.dtype} {tuple(valid.shape)} on {valid.device}"
        )
    return valid


def _prepare(x_hat: Tensor, x: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Check a pair and return ``(x_hat, x, valid)``: float32, clamped, invalid pixels zeroed.

    Zeroing invalid pixels in both images makes every later step blind to their content.
    """
    _check_image("x_hat", x_hat)
    _check_image("x", x)
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x {tuple(x.shape)} differ in shape")
    if x_hat.device != x.device:
        raise ValueError(f"x_hat is on {x_hat.device} but x is on {x.device}")
    mask = _check_valid(valid, x)
    x_hat = x_hat.float().clamp(0.0, 1.0)
    x = x.float()
    if valid is None:
        return x_hat, x, mask
    zero = x.new_zeros(())
    return torch.where(mask, x_hat, zero), torch.where(mask, x, zero), mask


def _sample_chunks(x: Tensor) -> list[slice]:
    """Batch slices to compute per-sample metrics on one after another.

    On CPU, ``_CPU_CHUNK`` samples per intra-op thread at a time: the metrics are long chains
    of elementwise passes, memory-bound, and a small chunk keeps their intermediates in cache,
    while each thread still gets a share worth a parallel region. Elsewhere (CUDA) the whole
    batch, so each kernel launch does as much work as possible.
    """
    b = x.shape[0]
    step = _CPU_CHUNK * torch.get_num_threads() if x.device.type == "cpu" else b
    return [slice(i, i + step) for i in range(0, b, step)]


def _check_window(window_db: tuple[float, float]) -> tuple[float, float]:
    """Return ``(vmin_db, width_db)`` of a ``(vmin_db, vmax_db)`` window; raise if invalid."""
    try:
        vmin, vmax = (float(v) for v in window_db)
    except (TypeError, ValueError):
        raise ValueError(f"window_db must be (vmin_db, vmax_db), got {window_db!r}") from None
    if not (math.isfinite(vmin) and math.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"window_db {window_db!r}: vmin_db must be finite and < vmax_db")
    return vmin, vmax - vmin


def _mse(x_hat: Tensor, x: Tensor, valid: Tensor) -> Tensor:
    """Per-sample MSE over valid pixels, float64 ``(B,)``; NaN for a sample with none."""
    err = (x_hat - x).double().square().sum(dim=(1, 2, 3))
    return err / valid.sum(dim=(1, 2, 3)).double()


def psnr(x_hat: Tensor, x: Tensor, valid: Tensor | None = None) -> Tensor:
    """PSNR in dB with data range 1 on the unit window, per sample.

    ``10·log10(1 / MSE)`` with the MSE over valid pixels: +inf for a perfect reconstruction,
    NaN for a sample without valid pixels. On speckled data it saturates near
    :func:`autoenc.metrics.sar.psnr_cap`, so report it next to the SAR metrics.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.

    Returns:
        ``(B,)`` float32 on the input's device.
    """
    with _no_autocast(x):
        x_hat, x, valid = _prepare(x_hat, x, valid)
        return (-10.0 * torch.log10(_mse(x_hat, x, valid))).float()


def rmse_db(
    x_hat: Tensor, x: Tensor, window_db: tuple[float, float], valid: Tensor | None = None
) -> Tensor:
    """Root-mean-square error in dB, ``W · RMSE_unit`` for a window of width ``W`` dB.

    PSNR computed on dB values with peak ``W`` equals the unit-window PSNR (both the peak and
    the error scale by ``W``), so the figure that carries the physical unit is this RMSE.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        window_db: the ``(vmin_db, vmax_db)`` window that maps to [0, 1].
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.

    Returns:
        ``(B,)`` float32 on the input's device.
    """
    _, width = _check_window(window_db)
    with _no_autocast(x):
        x_hat, x, valid = _prepare(x_hat, x, valid)
        return (width * _mse(x_hat, x, valid).sqrt()).float()


def _blur(t: Tensor) -> Tensor:
    """SSIM Gaussian filter, valid part: ``(N, 1, H, W)`` -> ``(N, 1, H - 10, W - 10)``.

    The 2-D kernel is the outer product of two normalised 1-D kernels, so a row pass then a
    column pass gives the same filter with 22 instead of 121 multiply-adds per pixel. Each
    pass is in-place multiply-adds of shifted views rather than ``conv2d``: on CPU, oneDNN's
    single-channel convolution was slower with two 1-D kernels than with the 11x11 one
    (~200 ms for 40 planes of 266², 1 thread), while the views took ~10 ms; they are
    memory-bound elementwise kernels on any device.
    """
    r, taps = _SSIM_RADIUS, _SSIM_TAPS
    h, w = t.shape[-2] - 2 * r, t.shape[-1] - 2 * r
    rows = t[..., r : r + w] * taps[r]
    for i in range(r):
        j = 2 * r - i
        rows.add_(t[..., i : i + w], alpha=taps[i]).add_(t[..., j : j + w], alpha=taps[j])
    out = rows[..., r : r + h, :] * taps[r]
    for i in range(r):
        j = 2 * r - i
        out.add_(rows[..., i : i + h, :], alpha=taps[i]).add_(
            rows[..., j : j + h, :], alpha=taps[j]
        )
    return out


def _ssim_scale(x_hat: Tensor, x: Tensor, contrast: bool) -> tuple[Tensor, Tensor | None]:
    """Per-sample SSIM at one scale and, if ``contrast``, the mean contrast-structure term.

    The steps of torchmetrics' ``_ssim_update``: reflect-pad by the kernel radius (the map keeps
    the image's size), window means of ``x_hat, x, x_hat², x², x_hat·x``, variances clamped at
    0, the SSIM map averaged over the whole image. The contrast term
    ``(2σ_xy + C2) / (σ_x² + σ_y² + C2)`` is averaged without a radius-wide border, i.e. over
    the windows that do not reach into the padding.

    One difference in rounding only: the moments are taken of both images minus the original's
    mean (``offset``), added back to the means afterwards. Variances and the covariance do not
    change under a common shift (the weights sum to 1), but ``E[x²] − μ²`` then no longer
    cancels in float32: on speckle (values near 0.7, σ² ~ 1e-3) torchmetrics' float32 SSIM is
    up to ~2e-5 off its float64 value, this one within ~2e-7.

    Args:
        x_hat: prepared reconstruction ``(B, 1, H, W)`` float32.
        x: prepared original, same shape.
        contrast: also return the contrast term (MS-SSIM needs it at all but the last scale).

    Returns:
        ``(ssim, cs)``, each ``(B,)``; ``cs`` is None unless ``contrast``.
    """
    b, r = x.shape[0], _SSIM_RADIUS
    offset = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    p = F.pad(x_hat - offset, (r, r, r, r), mode="reflect")
    t = F.pad(x - offset, (r, r, r, r), mode="reflect")
    planes = _blur(torch.cat((p, t, p * p, t * t, p * t)))
    mu_p, mu_t, e_pp, e_tt, e_pt = torch.split(planes, b)
    var_p = e_pp.sub_(mu_p.pow(2)).clamp_(min=0.0)
    var_t = e_tt.sub_(mu_t.pow(2)).clamp_(min=0.0)
    upper = e_pt.sub_(mu_p * mu_t).mul_(2).add_(_SSIM_C2)
    lower = var_p.add_(var_t).add_(_SSIM_C2)
    mu_p, mu_t = mu_p.add_(offset), mu_t.add_(offset)
    mu_pp, mu_tt, mu_pt = mu_p.pow(2), mu_t.pow(2), mu_p * mu_t
    num = mu_pt.mul_(2).add_(_SSIM_C1).mul_(upper)
    den = mu_pp.add_(mu_tt).add_(_SSIM_C1).mul_(lower)
    sim = num.div_(den).reshape(b, -1).mean(-1)
    if not contrast:
        return sim, None
    cs = (upper[..., r:-r, r:-r] / lower[..., r:-r, r:-r]).reshape(b, -1).mean(-1)
    return sim, cs


def _ssim_pyramid(x_hat: Tensor, x: Tensor, multiscale: bool = True) -> tuple[Tensor, Tensor]:
    """SSIM and MS-SSIM of prepared images, sharing the first scale.

    SSIM is MS-SSIM's full-resolution ``sim``, so both together cost about 4/3 of one SSIM.
    MS-SSIM follows torchmetrics' ``_multiscale_ssim_update`` with its default
    ``normalize="relu"``: the contrast term at scales 1-4 and the SSIM at scale 5, each clipped
    at 0, raised to its weight in float32 and multiplied (the SSIM returned is not clipped).
    It is NaN below ``MS_SSIM_MIN_SIZE`` (see :func:`ms_ssim`) and when not ``multiscale``.

    Runs over :func:`_sample_chunks`: on CPU a few samples at a time.
    """
    chunks = _sample_chunks(x)
    if len(chunks) > 1:
        parts = [_ssim_pyramid(x_hat[c], x[c], multiscale) for c in chunks]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    b = x.shape[0]
    if not multiscale or min(x.shape[-2:]) < MS_SSIM_MIN_SIZE:
        return _ssim_scale(x_hat, x, contrast=False)[0], x.new_full((b,), math.nan)
    terms: list[Tensor] = []
    for scale in range(len(_MS_SSIM_BETAS)):
        if scale:
            x_hat, x = F.avg_pool2d(x_hat, (2, 2)), F.avg_pool2d(x, (2, 2))
        last = scale == len(_MS_SSIM_BETAS) - 1
        sim, cs = _ssim_scale(x_hat, x, contrast=not last)
        if not scale:
            first = sim
        terms.append(torch.relu(sim if cs is None else cs))
    betas = torch.tensor(_MS_SSIM_BETAS, device=x.device).view(-1, 1)
    return first, torch.prod(torch.stack(terms) ** betas, dim=0)


def ssim(x_hat: Tensor, x: Tensor) -> Tensor:
    """SSIM per sample: Gaussian window (sigma 1.5, 11 px), data range 1, as torchmetrics.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].

    Returns:
        ``(B,)`` float32 on the input's device.
    """
    with _no_autocast(x):
        x_hat, x, _ = _prepare(x_hat, x, None)
        return _ssim_pyramid(x_hat, x, multiscale=False)[0]


def ms_ssim(x_hat: Tensor, x: Tensor) -> Tensor:
    """MS-SSIM per sample with torchmetrics' defaults (5 scales, 11-px Gaussian, range 1).

    Images with ``min(H, W) < MS_SSIM_MIN_SIZE`` (176) get NaN for every sample: the default
    pyramid does not fit, and a smaller kernel or fewer scales would be a different metric.
    As in torchmetrics' default (``normalize="relu"``) a negative term at any scale counts as
    0, so very dissimilar images (e.g. one the negative of the other) score 0 rather than the
    NaN of a negative base raised to a fractional weight.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].

    Returns:
        ``(B,)`` float32 on the input's device.
    """
    return ssim_and_ms_ssim(x_hat, x)[1]


def ssim_and_ms_ssim(x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(ssim(x_hat, x), ms_ssim(x_hat, x))`` for about the price of the MS-SSIM alone.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].

    Returns:
        Two ``(B,)`` float32 tensors on the input's device.
    """
    with _no_autocast(x):
        x_hat, x, _ = _prepare(x_hat, x, None)
        return _ssim_pyramid(x_hat, x)


def _interior(valid: Tensor) -> Tensor:
    # (B, 1, H, W) -> (B, 1, H-2, W-2): True where the whole 3x3 neighbourhood is valid
    rows = valid[..., :-2] & valid[..., 1:-1] & valid[..., 2:]
    return rows[..., :-2, :] & rows[..., 1:-1, :] & rows[..., 2:, :]


def _masked_mean(t: Tensor, mask: Tensor) -> Tensor:
    # (B, C, H, W) -> (B,) float64; NaN for a sample whose mask is empty. Summed in float64
    # without first copying a float32 `t` to float64.
    total = torch.where(mask, t, 0.0).sum(dim=(1, 2, 3), dtype=torch.float64)
    return total / mask.sum(dim=(1, 2, 3)).double()


def _laplacian(t: Tensor) -> Tensor:
    # (B, 1, H, W) -> (B, 1, H-2, W-2): 'valid' 4-neighbour Laplacian, from shifted views
    # (a 3x3 conv2d of one channel is several times slower on CPU)
    vertical = t[..., :-2, 1:-1] + t[..., 2:, 1:-1]
    return vertical.add_(t[..., 1:-1, :-2]).add_(t[..., 1:-1, 2:]).sub_(t[..., 1:-1, 1:-1], alpha=4)


def _epi(x_hat: Tensor, x: Tensor, interior: Tensor) -> Tensor:
    """:func:`epi` of prepared images with their :func:`_interior` mask; float64 ``(B,)``.

    Two passes (centre, then correlate) as the definition reads, so a constant Laplacian gives
    exactly zero variance. The centred values and their products stay float32 (relative error
    ~1e-7, the same as the float32 Laplacian itself) and only the sums are float64.
    """
    dims = (1, 2, 3)

    def centred(t: Tensor) -> Tensor:
        lap = _laplacian(t)  # (B, 1, H-2, W-2)
        mean = _masked_mean(lap, interior).float().view(-1, 1, 1, 1)
        return torch.where(interior, lap.sub_(mean), 0.0)

    a, b = centred(x), centred(x_hat)
    va, vb = (t.square().sum(dim=dims, dtype=torch.float64) for t in (a, b))
    r = a.mul_(b).sum(dim=dims, dtype=torch.float64) / (va * vb).sqrt()
    return torch.where(va > 0, torch.where(vb > 0, r, 0.0), math.nan)


def epi(x_hat: Tensor, x: Tensor, valid: Tensor | None = None) -> Tensor:
    """Correlation edge-preservation index (Sattar et al., IEEE TIP 1997), per sample.

    Pearson correlation of the 4-neighbour Laplacians ``[[0,1,0],[1,-4,1],[0,1,0]]`` of ``x``
    and ``x_hat``, each centred on its mean, over the pixels whose whole 3x3 neighbourhood is
    valid ('valid' convolution, so no padding artefacts). Pearson is affine invariant, so the
    unit window gives the dB value. 1 for identical images, < 1 for blurring; on speckle the
    Laplacian is mostly noise, so a 3x3 box blur can even give a negative EPI.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.

    Returns:
        ``(B,)`` float32; NaN where ``Δx`` has zero variance, 0 where only ``Δx_hat`` has.
    """
    with _no_autocast(x):
        x_hat, x, valid = _prepare(x_hat, x, valid)
        return _epi(x_hat, x, _interior(valid)).float()


def _sobel_total(t: Tensor, interior: Tensor) -> Tensor:
    # (B, 1, H, W) -> (B,) float64: sum of the 3x3 Sobel gradient magnitude over `interior`.
    # Sobel is separable: d/dx = [1, 2, 1]^T (column smoothing) of the [-1, 0, 1] row difference,
    # d/dy the transpose; shifted views instead of a 2-channel conv2d, several times faster on CPU.
    dx = t[..., 2:] - t[..., :-2]  # (B, 1, H, W-2)
    gx = dx[..., :-2, :] + dx[..., 2:, :]
    gx.add_(dx[..., 1:-1, :], alpha=2)
    sy = t[..., :-2] + t[..., 2:]
    sy.add_(t[..., 1:-1], alpha=2)
    gy = sy[..., 2:, :] - sy[..., :-2, :]
    magnitude = gx.square_().add_(gy.square_()).sqrt_()
    return torch.where(interior, magnitude, 0.0).sum(dim=(1, 2, 3), dtype=torch.float64)


def _grad_ratio(x_hat: Tensor, x: Tensor, interior: Tensor) -> Tensor:
    """:func:`grad_ratio` of prepared images with their :func:`_interior` mask; float64."""
    g = _sobel_total(x, interior)
    return torch.where(g > 0, _sobel_total(x_hat, interior) / g, math.nan)


def grad_ratio(x_hat: Tensor, x: Tensor, valid: Tensor | None = None) -> Tensor:
    """Gradient ratio ``Σ|∇x_hat| / Σ|∇x|`` with 3x3 Sobel magnitudes, per sample.

    Summed over the pixels whose 3x3 neighbourhood is valid; the dB scale ``W`` cancels, so the
    unit window gives the dB value. < 1 means smoothing, > 1 added edges or noise.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.

    Returns:
        ``(B,)`` float32; NaN where ``x`` has no gradient.
    """
    with _no_autocast(x):
        x_hat, x, valid = _prepare(x_hat, x, valid)
        return _grad_ratio(x_hat, x, _interior(valid)).float()
