# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Entropy models (factorized prior, Gaussian conditional) and their range coder."""

from __future__ import annotations

from autoenc.entropy.base import EntropyModel, bits, lower_bound
from autoenc.entropy.coder import (
    PRECISION,
    StreamDecoder,
    StreamEncoder,
    TableCoder,
    quantize_pmf,
)
from autoenc.entropy.factorized import EntropyBottleneck
from autoenc.entropy.gaussian import GaussianConditional, get_scale_table

__all__ = [
    "PRECISION",
    "EntropyBottleneck",
    "EntropyModel",
    "GaussianConditional",
    "StreamDecoder",
    "StreamEncoder",
    "TableCoder",
    "bits",
    "get_scale_table",
    "lower_bound",
    "quantize_pmf",
]
