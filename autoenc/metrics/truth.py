# Copyright (c) autoenc developers.
# Licensed under the MIT License.

r"""Metrics against the clean truth, which synthetic datasets store and real data lacks.

A synthetic patch is ``x = R·S``: the noise-free reflectivity ``R`` times speckle ``S``. The
dataset stores ``R`` coded in the same clipped dB window as ``x`` (the *truth*), so a
reconstruction ``x̂`` can be scored against what a user wants rather than against the noise:

- ``psnr_truth``: PSNR of ``x̂`` against ``R`` on the [0, 1] window over valid pixels, the
  definition of :func:`autoenc.metrics.image.psnr`. PSNR against ``x`` saturates at the speckle
  cap; this one does not, and it rewards removing speckle instead of coding it. The speckled
  input itself scores ``psnr(x, R)``: the reference of "no coding".
- ``enl_ratio_truth``: mean local ENL of ``x̂`` over mean local ENL of ``x`` (linear intensity,
  ``block x block`` blocks, as :func:`autoenc.metrics.sar.sar_metrics`), over the blocks that are
  homogeneous **in the truth**: fully valid, unclipped in ``x`` and in ``R``, with the truth's
  intensity CV at most ``cv_max``. The ENL ratio of ``sar_metrics`` chooses blocks on ``x``,
  where a reflectivity CV up to 0.32 passes at L = 4.4; here a 0.05 CV, about a 0.75 dB ramp
  across the block (a dB ramp of ``D`` dB has CV ≈ 0.066·D), so edges and texture cannot lower
  the ENL of ``x`` and the ratio measures speckle alone. NaN without such blocks.
- ``homogeneous_fraction_truth``: those blocks over all blocks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from autoenc.metrics.image import _no_autocast, _prepare, _sample_chunks, psnr
from autoenc.metrics.sar import (
    _block_stats,
    _check_block,
    _clipped,
    _low_cv,
    _mean_enl,
    unit_to_intensity,
)
from autoenc.sar.normalisation import Normalisation

#: Largest intensity CV of the truth in a block used for ``enl_ratio_truth``.
TRUTH_CV_MAX = 0.05


def truth_metrics(
    x_hat: Tensor,
    x: Tensor,
    truth: Tensor,
    window_db: tuple[float, float] | Normalisation,
    valid: Tensor | None = None,
    block: int = 16,
    cv_max: float = TRUTH_CV_MAX,
) -> dict[str, Tensor]:
    """PSNR against the truth and the ENL ratio over blocks homogeneous in the truth.

    Definitions are in the module docstring.

    Args:
        x_hat: reconstruction ``(B, 1, H, W)`` in [0, 1] (clamped).
        x: speckled original ``(B, 1, H, W)`` in [0, 1].
        truth: clean reflectivity ``(B, 1, H, W)`` on the same window, in [0, 1].
        window_db: the ``(vmin_db, vmax_db)`` window that maps to [0, 1], or its record.
        valid: usable pixels, ``(B, 1, H, W)`` bool; None means all.
        block: block side in pixels.
        cv_max: largest intensity CV of the truth in a homogeneous block.

    Returns:
        ``{"psnr_truth", "enl_ratio_truth", "homogeneous_fraction_truth"}``, each ``(B,)``
        float32 on the input's device.

    Raises:
        ValueError: mismatched shapes or devices, a bad window, block or ``cv_max``.
    """
    if not (math.isfinite(cv_max) and cv_max > 0):
        raise ValueError(f"cv_max must be a finite number > 0, got {cv_max!r}")
    norm = Normalisation.from_window(window_db)
    out = {"psnr_truth": psnr(x_hat, truth, valid)}
    with _no_autocast(x):
        x_hat, x, mask = _prepare(x_hat, x, valid)
        truth, _, _ = _prepare(truth, x, valid)  # same checks; clamped, invalid pixels zeroed
        _check_block(block, x.shape)
        parts = [
            _truth_blocks(x_hat[c], x[c], truth[c], mask[c], norm, block, cv_max)
            for c in _sample_chunks(x)
        ]
    out.update({name: torch.cat([p[name] for p in parts]) for name in parts[0]})
    return out


def _truth_blocks(
    x_hat: Tensor,
    x: Tensor,
    truth: Tensor,
    valid: Tensor,
    norm: Normalisation,
    block: int,
    cv_max: float,
) -> dict[str, Tensor]:
    """ENL ratio and fraction of the truth-homogeneous blocks of prepared images, float32."""
    mean_r, var_r = _block_stats(unit_to_intensity(truth, norm), block)
    bad = ~valid | _clipped(x) | _clipped(truth)
    mask = _low_cv(mean_r, var_r, bad, block, cv_max)  # (B, H//block, W//block)
    enl = _mean_enl(*_block_stats(unit_to_intensity(x, norm), block), mask)
    enl_hat = _mean_enl(*_block_stats(unit_to_intensity(x_hat, norm), block), mask)
    fraction = mask.sum(dim=(1, 2)).double() / (mask.shape[1] * mask.shape[2])
    return {
        "enl_ratio_truth": (enl_hat / enl).float(),
        "homogeneous_fraction_truth": fraction.float(),
    }
