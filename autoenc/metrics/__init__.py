# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Per-sample quality metrics: image fidelity (PSNR, SSIM, MS-SSIM) and SAR statistics."""

from autoenc.metrics.evaluate import evaluate_batch
from autoenc.metrics.image import MS_SSIM_MIN_SIZE, epi, grad_ratio, psnr, rmse_db
from autoenc.metrics.sar import (
    block_stats,
    estimate_looks,
    homogeneous_blocks,
    local_enl,
    psnr_cap,
    sar_metrics,
    sigma_db,
    speckle_bias_db,
    unit_to_intensity,
)
from autoenc.metrics.ssim import ms_ssim, ssim, ssim_and_ms_ssim
from autoenc.metrics.truth import TRUTH_CV_MAX, truth_metrics

__all__ = [
    "MS_SSIM_MIN_SIZE",
    "TRUTH_CV_MAX",
    "block_stats",
    "epi",
    "estimate_looks",
    "evaluate_batch",
    "grad_ratio",
    "homogeneous_blocks",
    "local_enl",
    "ms_ssim",
    "psnr",
    "psnr_cap",
    "rmse_db",
    "sar_metrics",
    "sigma_db",
    "speckle_bias_db",
    "ssim",
    "ssim_and_ms_ssim",
    "truth_metrics",
    "unit_to_intensity",
]
