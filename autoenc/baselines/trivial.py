# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Trivial reference scores that put a trained model's numbers in context."""

from __future__ import annotations

import math

import numpy as np

from autoenc.data.patches import PatchDataset


def patch_mean_psnr(dataset: PatchDataset, limit: int | None = None) -> float:
    """PSNR (data_range 1) of predicting every patch by its own mean value.

    Pooled over all pixels like torchmetrics' ``PeakSignalNoiseRatio`` (one MSE over the set),
    so it is directly comparable with ``val/psnr``. A codec must beat it to have learned any
    structure at all.
    """
    total, count = 0.0, 0
    n = len(dataset)
    for i in range(n if limit is None else min(n, limit)):
        x = dataset.image(i).numpy().astype(np.float64)
        total += float(((x - x.mean()) ** 2).sum())
        count += x.size
    if count == 0:
        raise ValueError("patch_mean_psnr needs a non-empty dataset")
    return 10.0 * math.log10(1.0 / (total / count))
