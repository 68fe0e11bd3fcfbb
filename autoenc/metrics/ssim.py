# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""SSIM and MS-SSIM per sample, on the unit window as :mod:`autoenc.metrics.image`.

Both take ``x_hat`` (reconstruction, clamped to [0, 1]) and ``x`` (original) as
``(B, 1, H, W)`` float tensors and return ``(B,)`` float32 on the input's device, computed in
float32 with autocast off. They are window statistics and take no mask: fill invalid pixels
identically in ``x`` and ``x_hat`` first.

They are torchmetrics' definitions with the project's setting
(:data:`autoenc.metrics.image.SSIM_KWARGS`), re-implemented here only for speed (a separable
Gaussian instead of an 11x11 convolution; see :func:`_blur`): same kernel, reflect padding and
crop, constants and scale weights, agreeing per sample to float32 rounding
(tests/test_metrics.py compares them with torchmetrics directly). MS-SSIM adds torchmetrics'
defaults: the scale weights below, 2x2 average pooling between scales and ``normalize="relu"``
(negative terms -> 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from autoenc.metrics.image import (
    MS_SSIM_MIN_SIZE,
    SSIM_KWARGS,
    _no_autocast,
    _prepare,
    _sample_chunks,
)

_SSIM_SIGMA = float(SSIM_KWARGS["sigma"])
_SSIM_RADIUS = int(SSIM_KWARGS["kernel_size"]) // 2
_SSIM_C1 = (0.01 * 1.0) ** 2  # k1 = 0.01, data range 1
_SSIM_C2 = (0.03 * 1.0) ** 2  # k2 = 0.03
_MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_taps() -> tuple[float, ...]:
    """The 1-D SSIM kernel built as torchmetrics' ``_gaussian`` does it, in float32.

    Returned as Python floats (exactly the float32 values) so the filter can pass them as
    scalars; torchmetrics' 2-D kernel is the outer product of this kernel with itself.
    """
    dist = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float32)
    gauss = torch.exp(-torch.pow(dist / _SSIM_SIGMA, 2) / 2)
    return tuple((gauss / gauss.sum()).tolist())


_SSIM_TAPS = _gaussian_taps()


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
