# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""All per-sample metrics of a batch in one call, for evaluation scripts and tables."""

from __future__ import annotations

from torch import Tensor

from autoenc.metrics.image import psnr, rmse_db
from autoenc.metrics.sar import sar_metrics
from autoenc.metrics.ssim import ssim_and_ms_ssim
from autoenc.metrics.truth import TRUTH_CV_MAX, truth_metrics
from autoenc.sar.normalisation import Normalisation


def evaluate_batch(
    x_hat: Tensor,
    x: Tensor,
    window_db: tuple[float, float] | Normalisation,
    looks: float,
    valid: Tensor | None = None,
    *,
    truth: Tensor | None = None,
    block: int = 16,
    k: float = 1.25,
    truth_cv: float = TRUTH_CV_MAX,
) -> dict[str, Tensor]:
    """PSNR, RMSE (dB), SSIM, MS-SSIM and :func:`~autoenc.metrics.sar.sar_metrics` per sample.

    PSNR alone saturates near the speckle cap, so the SAR metrics always come with it. SSIM and
    MS-SSIM ignore ``valid``; fill invalid pixels identically in both images if that matters.
    With ``truth`` (synthetic data) :func:`~autoenc.metrics.truth.truth_metrics` is added.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: original ``(B, 1, H, W)`` in [0, 1].
        window_db: the ``(vmin_db, vmax_db)`` window that maps to [0, 1], or its record.
        looks: the data's ENL, for choosing homogeneous blocks.
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.
        truth: the clean reflectivity ``(B, 1, H, W)`` on the same window, or None.
        block: block side in pixels for the ENL statistics.
        k: homogeneity threshold in units of ``1 / sqrt(looks)``.
        truth_cv: largest intensity CV of the truth in a block used for ``enl_ratio_truth``.

    Returns:
        Metric name -> ``(B,)`` float32 tensor on the input's device.
    """
    norm = Normalisation.from_window(window_db)  # checked once, shared by every metric
    ssim, ms_ssim = ssim_and_ms_ssim(x_hat, x)  # one pyramid: SSIM is MS-SSIM's first scale
    out = {
        "psnr": psnr(x_hat, x, valid),
        "rmse_db": rmse_db(x_hat, x, norm, valid),
        "ssim": ssim,
        "ms_ssim": ms_ssim,
        **sar_metrics(x_hat, x, norm, looks, valid, block=block, k=k),
    }
    if truth is not None:
        out.update(truth_metrics(x_hat, x, truth, norm, valid, block=block, cv_max=truth_cv))
    return out
