# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Per-sample image metrics on the normalised dB window: PSNR, RMSE, EPI, gradient ratio.

Every function takes ``x_hat`` (reconstruction) and ``x`` (original) as ``(B, 1, H, W)`` float
tensors in the unit window ``[0, 1]``, where ``u`` stands for ``Normalisation.from_unit(u)`` dB
(:class:`autoenc.sar.normalisation.Normalisation`), and returns one value per sample, ``(B,)``
float32, on the input's device. ``x_hat`` is clamped to ``[0, 1]`` first, because a decoder
output outside the window cannot be stored. Work is done in float32 with autocast off (sums in
float64), so the numbers do not depend on AMP settings.

The optional ``valid`` mask, ``(B, 1, H, W)`` bool, marks usable pixels (``None``: all); masked
metrics ignore whatever the other pixels hold, NaN included.

This module also holds the input checks every metric module shares and the project's one SSIM
setting (:data:`SSIM_KWARGS`, :data:`MS_SSIM_MIN_SIZE`); SSIM and MS-SSIM themselves are in
:mod:`autoenc.metrics.ssim`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

from autoenc.sar.normalisation import Normalisation

# torchmetrics' Gaussian SSIM with sigma 1.5 (kernel side int(3.5 * sigma + 0.5) * 2 + 1 = 11),
# data range 1, k1 = 0.01, k2 = 0.03: the project's one SSIM setting (also the training loss's
# and the Lightning metrics'). MS-SSIM adds torchmetrics' defaults (autoenc.metrics.ssim).
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = int(3.5 * _SSIM_SIGMA + 0.5)
#: The SSIM setting as torchmetrics' keyword arguments (with ``data_range=1.0``), used by the
#: loss (:func:`autoenc.task.ssim_fp32`), the Lightning metrics, :mod:`autoenc.metrics.ssim`
#: and the tests' references.
SSIM_KWARGS: Mapping[str, Any] = MappingProxyType(
    {"gaussian_kernel": True, "kernel_size": 2 * _SSIM_RADIUS + 1, "sigma": _SSIM_SIGMA}
)

# torchmetrics' MS-SSIM (5 scales, 11-px Gaussian) requires ``side // 16 > 10`` for both sides,
# i.e. side >= 176; smaller images get NaN rather than a differently configured score.
# (The error text says "larger than 160", but torchmetrics 1.9 still raises for 161..175 px.)
MS_SSIM_MIN_SIZE = 176

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
    x_hat: Tensor,
    x: Tensor,
    window_db: tuple[float, float] | Normalisation,
    valid: Tensor | None = None,
) -> Tensor:
    """Root-mean-square error in dB, ``W · RMSE_unit`` for a window of width ``W`` dB.

    PSNR computed on dB values with peak ``W`` equals the unit-window PSNR (both the peak and
    the error scale by ``W``), so the figure that carries the physical unit is this RMSE.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        window_db: the ``(vmin_db, vmax_db)`` window that maps to [0, 1], or its record.
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.

    Returns:
        ``(B,)`` float32 on the input's device.
    """
    width = Normalisation.from_window(window_db).width_db
    with _no_autocast(x):
        x_hat, x, valid = _prepare(x_hat, x, valid)
        return (width * _mse(x_hat, x, valid).sqrt()).float()


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
