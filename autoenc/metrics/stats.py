# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Summary statistics with a percentile-bootstrap confidence interval of the mean.

The interval is a percentile bootstrap of the mean: draw ``n_boot`` replicates by resampling the
values with replacement, take each replicate's mean and report its ``(1 - level) / 2`` and
``(1 + level) / 2`` percentiles (numpy's default linear interpolation). With ``groups`` (for
example scene ids) whole groups are resampled instead, a cluster bootstrap: patches cut from one
scene are correlated, and resampling them one by one would make the interval too narrow.

A replicate is held as integer weights over the samples (how often each sample's unit was
drawn), so one matrix product gives the replicate means of many rows at once;
:mod:`autoenc.metrics.bdrate` reuses :func:`bootstrap_means` for paired R-D curves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

#: Upper bound on the elements of one (replicates, samples) weight block, to bound memory.
_BLOCK_ELEMENTS = 1 << 22


def check_bootstrap_args(n_boot: int, level: float) -> None:
    """Raise ``ValueError`` unless ``n_boot >= 1`` and ``0 < level < 1``."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def group_codes(groups: ArrayLike | None, n: int) -> tuple[NDArray[np.intp], int]:
    """Map per-sample labels to codes ``0..G-1``; without labels every sample is its own group.

    Args:
        groups: Length-``n`` labels (any sortable values), or ``None``.
        n: Number of samples.

    Returns:
        The code of each sample and the number of groups ``G``.

    Raises:
        ValueError: If ``groups`` is not one label per sample.
    """
    if groups is None:
        return np.arange(n, dtype=np.intp), n
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must hold one label per sample ({n}), got shape {labels.shape}")
    uniques, codes = np.unique(labels, return_inverse=True)
    return codes.astype(np.intp), int(uniques.size)


def bootstrap_means(
    x: FloatArray, n_boot: int, rng: np.random.Generator, groups: ArrayLike | None = None
) -> tuple[FloatArray, int]:
    """Means of each row of ``x`` over bootstrap replicates of its columns (samples).

    Every row sees the same resampled columns, which keeps paired rows (the same images coded
    by two codecs) paired. With ``groups`` the ``G`` groups are drawn ``G`` times with
    replacement and a replicate's mean is over all samples of the drawn groups.

    Args:
        x: Values of shape (P, N): P rows, N samples.
        n_boot: Number of replicates.
        rng: Random generator; the draws depend only on it, ``N``, ``G`` and ``n_boot``.
        groups: Optional length-N labels for a cluster bootstrap.

    Returns:
        Replicate means of shape (n_boot, P) and the number of resampling units (N or G).
    """
    n = x.shape[1]
    codes, n_units = group_codes(groups, n)
    out = np.empty((n_boot, x.shape[0]), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(n, n_units))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        draws = rng.integers(0, n_units, size=(b, n_units))  # (b, G) unit indices
        flat = (draws + n_units * np.arange(b)[:, None]).ravel()
        counts = np.bincount(flat, minlength=b * n_units).reshape(b, n_units)  # (b, G)
        weights = counts[:, codes].astype(np.float64)  # (b, G) -> (b, N)
        out[start : start + b] = (weights @ x.T) / weights.sum(axis=1, keepdims=True)  # (b, P)
    return out, n_units


def percentile_interval(values: FloatArray, level: float) -> tuple[float, float]:
    """Central percentile interval of ``values`` at ``level``; NaNs if ``values`` is empty."""
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Summary:
    """Location, spread and a bootstrap CI of the mean of one metric over many samples.

    Attributes:
        n: Number of finite values used.
        n_nan: Number of non-finite values dropped (NaN and ±inf).
        mean: Mean of the finite values.
        std: Sample standard deviation (``ddof=1``); NaN if ``n < 2``.
        median: Median of the finite values.
        ci_lo: Lower end of the percentile-bootstrap CI of the mean.
        ci_hi: Upper end of the percentile-bootstrap CI of the mean.
        level: Confidence level of the interval.
    """

    n: int
    n_nan: int
    mean: float
    std: float
    median: float
    ci_lo: float
    ci_hi: float
    level: float

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON results (NaN stays a float NaN)."""
        return asdict(self)


def summarize(
    values: ArrayLike,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> Summary:
    """Summarise per-sample metric values, with a percentile-bootstrap CI of their mean.

    Non-finite values (a PSNR of +inf on an exact reconstruction, a NaN from an empty mask) are
    counted and dropped rather than poisoning the mean. An empty input gives NaNs instead of an
    exception so a report can still be written. The CI needs at least two resampling units
    (values, or groups): with one there is no variability to estimate and it is NaN.

    Args:
        values: 1-D per-sample values.
        n_boot: Number of bootstrap replicates.
        seed: Seed of the bootstrap draws, so reports are reproducible.
        level: Confidence level, strictly between 0 and 1.
        groups: Optional length-N labels (e.g. scene ids) for a cluster bootstrap.

    Returns:
        The :class:`Summary`.

    Raises:
        ValueError: If ``values`` is not 1-D, ``groups`` does not match it, or the bootstrap
            arguments are out of range.
    """
    check_bootstrap_args(n_boot, level)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    labels = None if groups is None else np.asarray(groups)
    if labels is not None and labels.shape != v.shape:
        raise ValueError(f"groups must hold one label per value ({v.size}), got {labels.shape}")
    finite = np.isfinite(v)
    n_nan = int(v.size - finite.sum())
    v = v[finite]
    labels = None if labels is None else labels[finite]
    nan = float("nan")
    if v.size == 0:
        return Summary(0, n_nan, nan, nan, nan, nan, nan, level)
    std = float(np.std(v, ddof=1)) if v.size >= 2 else nan
    ci_lo, ci_hi = nan, nan
    _, n_units = group_codes(labels, v.size)
    if n_units >= 2:
        rng = np.random.default_rng(seed)
        means, _ = bootstrap_means(v[None, :], n_boot, rng, labels)  # (n_boot, 1)
        ci_lo, ci_hi = percentile_interval(means[:, 0], level)
    return Summary(
        int(v.size), n_nan, float(np.mean(v)), std, float(np.median(v)), ci_lo, ci_hi, level
    )
