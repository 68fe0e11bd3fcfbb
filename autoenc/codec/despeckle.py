# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Despeckling at decode time: the same bytes, reconstructed towards the clean reflectivity.

A wavelet codec's decoder knows, for every coefficient, the Gaussian scale ``sigma`` its context
model predicts (speckle and signal together). Speckle in the dB domain is additive and of known
spectrum for a product (:mod:`autoenc.data.speckle`), so its variance ``n_b`` in each subband
``b`` can be computed once; the Wiener estimate of the clean coefficient is then the decoded one
times ``1 - n_b / sigma²``. ``strength`` s in [0, 1] scales that shrink:
``max(0, 1 - s n_b / sigma²)``. 0 is the faithful decode, MMSE against the speckled input; 1 the
full Wiener shrink, a despeckled product. A model may carry a default strength per quality (the
shipped codec: 0.25 at and below the speckle cap, 0 above). The speckle's dB bias (its log is
not zero-mean) is removed in the same proportion, so the despeckled image estimates the
reflectivity's level, not the speckled image's. Nothing is stored in the file: any ``.aec`` of
a variable-rate wavelet model can be decoded either way.

Invariants:
    * :func:`subband_speckle` depends only on its arguments (seeded simulation, cached);
    * strength 0 returns exactly what the plain decoder returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from autoenc.data.speckle import chain_speckle, product
from autoenc.layers.wavelet import dwt2

#: Side of the simulated flat field (px) and its seed.
SIM_SIZE = 512
SIM_SEED = 20261201


@dataclass(frozen=True)
class Despeckle:
    """A decode-time despeckling request: shrink ``strength`` for speckle of ``product``.

    ``None`` means the model's own choice: its per-quality default strength
    (``WaveletCodec(despeckle=...)``) and its ``speckle_product``.

    Raises:
        ValueError: a strength outside [0, 1] (on construction).
    """

    strength: float | None = None
    product: str | None = None

    def __post_init__(self) -> None:
        if self.strength is not None and not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"despeckle strength must be in [0, 1], got {self.strength!r}")


@dataclass(frozen=True)
class SubbandSpeckle:
    """Log-speckle of a product in the wavelet domain, in [0, 1] units of a dB window.

    ``bias``: mean of the speckle in dB units (negative: E[10 log10 S] < 0 for ENL < inf), the
    offset by which a speckled image's dB mean lies below its reflectivity's; ``var``: its
    variance in each subband (LL first, then HL, LH, HH per level, coarse to fine).
    """

    bias: float
    var: tuple[float, ...]


@lru_cache(maxsize=8)
def subband_speckle(levels: int, window_db: tuple[float, float], name: str) -> SubbandSpeckle:
    """Simulate pure speckle of product ``name`` and measure it subband by subband.

    A flat field at mid-window through the product's imaging chain, dB, the window (no
    clipping at mid-window for ENL >= 1), then the CDF 9/7 transform of its zero-mean part.
    """
    lo, hi = window_db
    mid = (lo + hi) / 2.0
    rng = np.random.default_rng(SIM_SEED)
    intensity = chain_speckle(
        np.full((SIM_SIZE, SIM_SIZE), 10.0 ** (mid / 10.0)), product(name), rng
    )
    unit = (10.0 * np.log10(np.maximum(intensity, 1e-30)) - lo) / (hi - lo)
    bias = float(unit.mean()) - 0.5
    x = torch.from_numpy((unit - unit.mean()).astype(np.float32))[None, None]
    bands = dwt2(x, levels)
    flat = [bands.ll, *(t for level in bands.details for t in level)]
    return SubbandSpeckle(bias, tuple(float(t.double().pow(2).mean()) for t in flat))


def decode_kwargs(
    model: object, request: Despeckle, window_db: tuple[float, float], quality: int | None
) -> dict[str, Any]:
    """Extra ``decompress_latent`` arguments of ``request`` at ``quality`` ({} for none).

    Raises:
        ValueError: despeckling asked of a model that cannot do it (not a wavelet codec).
    """
    levels = getattr(model, "levels", None)
    wavelet = getattr(model, "variable_rate", False) and isinstance(levels, int)
    s = request.strength
    if s is None:  # the model's default for this quality (none for other models)
        defaults = getattr(model, "despeckle", ()) if wavelet else ()
        s = float(defaults[quality]) if quality is not None and len(defaults) > quality else 0.0
    if not s:
        return {}
    if not wavelet:
        raise ValueError("--despeckle needs a wavelet codec (the default model); this one has none")
    assert isinstance(levels, int)
    name = request.product or str(getattr(model, "speckle_product", "grdh"))
    sp = subband_speckle(levels, (float(window_db[0]), float(window_db[1])), name)
    return {"shrink": [s * v for v in sp.var], "offset": -s * sp.bias}
