# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The wavelet codec: CDF 9/7 + one quantiser step per quality + a learned context model.

``g_a`` is JPEG 2000's CDF 9/7 (:mod:`autoenc.layers.wavelet`, fixed, near-orthonormal) with
its subbands packed into a spatially aligned latent, ``g_s`` its exact inverse; the entropy
model is learned (:class:`autoenc.entropy.subband_context.SubbandContext`). The latent carries
**1 value per pixel** (a critically sampled transform), which is what lets PSNR keep rising
with rate on speckle (cause 2 of issue 11), and at step 0 of training the codec already is a
wavelet coder (cause 3).

One model covers the whole R-D curve: the quality ``Q`` picks the uniform step ``steps[Q]``
(``Q = 0`` the coarsest), shared by every subband, as in an orthonormal transform coder. Training
draws a log-uniform step per patch over the ladder's span; the steps are part of the model's
config, so they travel in the checkpoint and in every file header.

Packing (``(B, 1, H, W)`` -> ``(B, 4**L, H / 2**L, W / 2**L)``): channel 0 is LL, then for each
level coarsest first, HL, LH, HH each pixel-unshuffled to ``4**k`` channels (``k = 0`` the
coarsest). Latent cell ``(i, j)`` holds exactly the coefficients "under" image block ``(i, j)``,
so the scene codec's tiling (latent cores, halos) works unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoenc.entropy import EntropyModel
from autoenc.entropy.subband_context import SubbandContext
from autoenc.layers.wavelet import Subbands, dwt2, idwt2, synthesis_level
from autoenc.models.base import AutoencoderBase, DeviceMismatchError, check_positive_int
from autoenc.models.registry import register_model
from autoenc.tiling import Window

#: Quantiser steps of the default quality ladder (coefficient units of the [0, 1] dB window):
#: about 0.03 to 1.6 bpp on the synthetic GRD data, ~1.3 dB apart at high rate.
DEFAULT_STEPS: tuple[float, ...] = tuple(round(2.0 * 0.75**i, 4) for i in range(12))


def pack(b: Subbands) -> Tensor:
    """Subbands of a (B, 1, H, W) image -> the aligned latent (B, 4**L, H/2**L, W/2**L)."""
    parts = [b.ll]
    for k, level in enumerate(b.details):
        parts += [F.pixel_unshuffle(t, 2**k) if k else t for t in level]
    return torch.cat(parts, 1)


def unpack(y: Tensor, levels: int) -> Subbands:
    """Inverse of :func:`pack`.

    Raises:
        ValueError: ``y`` does not have the ``4**levels`` channels of a ``levels`` packing.
    """
    if y.ndim != 4 or y.shape[1] != 4**levels:
        raise ValueError(
            f"latent has shape {tuple(y.shape)}; {levels} levels need {4**levels} channels"
        )
    ll, pos, details = y[:, :1], 1, []
    for k in range(levels):
        n = 4**k
        level = []
        for _ in range(3):
            t = y[:, pos : pos + n]
            level.append(F.pixel_shuffle(t, 2**k) if k else t)
            pos += n
        details.append(tuple(level))
    return Subbands(ll, tuple(details))  # type: ignore[arg-type]


class WaveletAnalysis(nn.Module):
    """``g_a``: x in [0, 1] -> packed CDF 9/7 coefficients of ``x - 0.5``."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return pack(dwt2(x.float() - 0.5, self.levels))


#: Samples a cropped synthesis keeps beyond what the next level needs, at every level: a crop
#: edge changes the 4 nearest output samples of a lifting pass (an output pair depends on the
#: inputs ``i - 2 .. i + 2``), and 2 * 4 output samples stay clear of them.
REGION_MARGIN = 4


class WaveletSynthesis(nn.Module):
    """``g_s``: packed coefficients -> image (inverse of :class:`WaveletAnalysis`)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, y: Tensor) -> Tensor:  # noqa: D102
        return idwt2(unpack(y.float(), self.levels)) + 0.5

    def region(self, y: Tensor, region: Window) -> Tensor:
        """``forward(y)[..., region]``, bit for bit, synthesising only what ``region`` needs.

        Level by level (coarsest first), only the span of each subband whose lifting reaches
        the region is unpacked and synthesised, plus :data:`REGION_MARGIN` samples; every kept
        value is computed by the same operations on the same inputs as in :meth:`forward`,
        and the window's own edges stay where they were. A tile decoded with its halo
        synthesises about 0.7x the samples (1024-px tiles, 128-px halo).

        Raises:
            ValueError: ``y`` is not a ``levels`` packing (as :func:`unpack`).
        """
        if y.ndim != 4 or y.shape[1] != 4**self.levels:
            unpack(y, self.levels)  # raises, naming the shape
        y = y.float()
        shape = y.shape[-2:]
        # the input span (rows, cols) of every level, finest first, from the region outwards
        want = ((region.y, region.y + region.h), (region.x, region.x + region.w))
        spans = []
        for j in reversed(range(self.levels)):
            rows = _input_span(*want[0], int(shape[0]) << j)
            cols = _input_span(*want[1], int(shape[1]) << j)
            want = (rows, cols)
            spans.append(want)
        spans.reverse()  # spans[j]: level j's subband rows and cols (0 = coarsest)
        (r0, r1), (c0, c1) = spans[0]
        ll = y[:, :1, r0:r1, c0:c1]
        pos = 1
        for j, ((r0, r1), (c0, c1)) in enumerate(spans):
            n = 4**j
            hl, lh, hh = (
                _packed_span(y[:, pos + i * n : pos + (i + 1) * n], 2**j, (r0, r1), (c0, c1))
                for i in range(3)
            )
            pos += 3 * n
            ll = synthesis_level(ll, hl, lh, hh)  # rows [2 r0, 2 r1), cols [2 c0, 2 c1)
            if j + 1 < len(spans):
                (a, b), (c, d) = spans[j + 1]
            else:
                a, b, c, d = region.y, region.y + region.h, region.x, region.x + region.w
            ll = ll[..., a - 2 * r0 : b - 2 * r0, c - 2 * c0 : d - 2 * c0]
        return ll + 0.5


def _input_span(lo: int, hi: int, n: int) -> tuple[int, int]:
    """Output samples ``[lo, hi)`` of a synthesis level -> the input span they need (of ``n``)."""
    return max(lo // 2 - REGION_MARGIN, 0), min(-(-hi // 2) + REGION_MARGIN, n)


def _packed_span(t: Tensor, f: int, rows: tuple[int, int], cols: tuple[int, int]) -> Tensor:
    """Rows and cols of a subband packed by ``pixel_unshuffle(f)``, unpacking only those."""
    (r0, r1), (c0, c1) = rows, cols
    y0, x0 = r0 // f, c0 // f
    cells = t[..., y0 : -(-r1 // f), x0 : -(-c1 // f)]
    band = F.pixel_shuffle(cells, f) if f > 1 else cells
    return band[..., r0 - y0 * f : r1 - y0 * f, c0 - x0 * f : c1 - x0 * f]


def _like(h: int, w: int, levels: int) -> Subbands:
    """Zero subbands of an ``h`` x ``w`` image (shapes only: what :func:`dwt2` would give)."""
    sizes = [(h >> (levels - k), w >> (levels - k)) for k in range(levels)]  # coarsest first
    zero = [torch.zeros(1, 1, a, b) for a, b in sizes]
    return Subbands(zero[0], tuple((t, t, t) for t in zero))


@register_model
class WaveletCodec(AutoencoderBase):
    """CDF 9/7 transform, per-quality uniform step, learned checkerboard/parent context model."""

    variable_rate = True  # compress/decompress take ``quality``
    #: Scene tile side: 1 latent value per pixel and a light transform, so large tiles; 1024
    #: against 512 cuts the decoder's halo overdraw from 2.25x to 1.56x (issue 14).
    default_tile = 1024

    def __init__(
        self,
        levels: int = 5,
        width: int = 32,
        steps: Sequence[float] = DEFAULT_STEPS,
        default_quality: int | None = None,
        despeckle: Sequence[float] | None = None,
        speckle_product: str = "grdh",
        widths: Sequence[int] | None = None,
        integer: bool = False,
        one_stage: int = 0,
        at_parent: int = 0,
    ) -> None:
        """Build the codec.

        Args:
            levels: wavelet levels; the downsampling factor is ``2**levels``.
            width: channels of each context CNN.
            steps: the quality ladder, strictly decreasing (quality 0 = largest step).
            default_quality: the quality of eval-mode ``forward`` and of coding without one
                (default: the middle of the ladder).
            despeckle: per quality, the despeckling strength a decode uses unless asked
                otherwise (:mod:`autoenc.codec.despeckle`; default: 0, faithful, everywhere).
                Decode-time only: it changes no weight and no bit of a file. The scene decoder
                and the evaluation apply it (``autoenc.codec.despeckle.decode_kwargs``);
                ``forward`` and ``decompress`` here stay faithful.
            speckle_product: the speckle model that despeckling removes.
            widths: channels of the context CNNs per detail level, coarsest first (default:
                ``width`` everywhere; the finest levels hold 3/4 of the symbols, so narrow
                nets there buy most of the speed).
            integer: integer-valued context nets (:mod:`autoenc.layers.integer`): files that
                decode to the same bits on every device, thread count and runtime (ONNX).
            one_stage: the number of finest levels coded in one stage each, every symbol's
                scale from the level's anchor net (no checkerboard, no rest net): half the
                context arithmetic and coder calls where 15/16 of the symbols are, for a
                little rate (the spatial context buys little there, issue 14).
            at_parent: the number of finest (one-stage) levels whose scales a net computes at
                the parent level's resolution, 4 per parent position (a quarter of the
                positions, no full-resolution low-pass or upsampled parents to build).

        Raises:
            ValueError: bad levels/width, a ladder that is empty, not positive or not
                decreasing, or a default quality outside it.
        """
        check_positive_int("levels", levels)
        check_positive_int("width", width)
        super().__init__(4**levels)
        del self.entropy_bottleneck  # coefficients are coded by the context model only
        ladder = [float(s) for s in steps]
        if not ladder or any(not (s > 0 and math.isfinite(s)) for s in ladder):
            raise ValueError(f"steps must be positive and finite, got {ladder}")
        if any(b >= a for a, b in zip(ladder, ladder[1:], strict=False)):
            raise ValueError(f"steps must decrease strictly (quality 0 = coarsest), got {ladder}")
        if default_quality is None:
            default_quality = len(ladder) // 2
        if not 0 <= int(default_quality) < len(ladder):
            raise ValueError(f"default_quality {default_quality} outside 0..{len(ladder) - 1}")
        strengths = [0.0] * len(ladder) if despeckle is None else [float(v) for v in despeckle]
        if len(strengths) != len(ladder) or any(not 0.0 <= v <= 1.0 for v in strengths):
            raise ValueError(
                f"despeckle needs one strength in [0, 1] per quality ({len(ladder)}), "
                f"got {despeckle}"
            )
        self._config.pop("latent_channels")
        self._config.update(levels=levels, width=width, steps=ladder,
                            default_quality=int(default_quality), despeckle=strengths,
                            speckle_product=str(speckle_product))  # fmt: skip
        if widths is not None or integer:  # absent from older configs: they load as before
            self._config.update(widths=None if widths is None else [int(v) for v in widths],
                                integer=bool(integer))  # fmt: skip
        if one_stage:  # absent from older configs too
            self._config.update(one_stage=int(one_stage))
        if at_parent:
            self._config.update(at_parent=int(at_parent))
        self.despeckle = tuple(strengths)
        self.speckle_product = str(speckle_product)
        self.levels = levels
        self.downsampling_factor = 2**levels
        self.steps = tuple(ladder)
        self.default_quality = int(default_quality)
        self.g_a = WaveletAnalysis(levels)
        self.g_s = WaveletSynthesis(levels)
        self.context = SubbandContext(levels, width, widths, integer, one_stage, at_parent)

    @property
    def exact_batching(self) -> bool:
        """Whether coding several tiles in one call gives each tile's own bits.

        True for integer context nets (exact sums in any order): the scene codec batches.
        """
        return bool(self.context.integer)

    @property
    def qualities(self) -> int:
        """Number of operating points (``--quality 0 .. qualities - 1``)."""
        return len(self.steps)

    def step_of(self, quality: int | None) -> float:
        """The quantiser step of ``quality`` (default: ``default_quality``).

        Raises:
            ValueError: a quality outside the ladder.
        """
        q = self.default_quality if quality is None else quality
        if isinstance(q, bool) or not isinstance(q, int) or not 0 <= q < len(self.steps):
            raise ValueError(f"quality must be an int in 0..{len(self.steps) - 1}, got {q!r}")
        return self.steps[q]

    def sample_steps(self, batch: int, device: torch.device) -> Tensor:
        """Training steps: log-uniform over the ladder's span widened by half a rung each side."""
        lo, hi = math.log(self.steps[-1]), math.log(self.steps[0])
        rung = (hi - lo) / max(len(self.steps) - 1, 1)
        lo, hi = lo - rung / 2, hi + rung / 2
        return torch.exp(lo + (hi - lo) * torch.rand(batch, device=device))

    def entropy_models(self) -> Iterator[EntropyModel]:
        """The Gaussian conditional of the context model."""
        yield self.context.gaussian_conditional

    def aux_loss(self) -> Tensor:
        """No quantile parameters: zero."""
        return torch.zeros((), device=self.context.ll_anchor.device)

    def _steps(self, x: Tensor, quality: int | None) -> Tensor:
        if self.training and quality is None:
            return self.sample_steps(x.shape[0], x.device)
        return torch.full((x.shape[0],), self.step_of(quality), device=x.device)

    def forward(
        self, x: Tensor, detach_rate: bool = False, quality: int | None = None
    ) -> dict[str, Any]:
        """``{"x_hat", "y", "likelihoods": {"y"}}``; random steps in training unless ``quality``.

        ``detach_rate`` changes nothing: the transform is fixed, only the rate is learned.
        """
        y = self.encode(x)
        step = self._steps(x, quality)
        y_hat, likelihoods = self.context(unpack(y, self.levels), step)
        x_hat = self.decode(pack(y_hat)).clamp(0.0, 1.0)
        return {"x_hat": x_hat, "y": y, "likelihoods": {"y": likelihoods}}

    def compress_latent(self, y: Tensor, quality: int | None = None) -> dict[str, Any]:
        """Entropy-code a packed latent: one stream per item, plus index checksums."""
        step = torch.full((y.shape[0],), self.step_of(quality), device=y.device)
        coded = self.context.compress(unpack(y.float(), self.levels), step)
        return {
            "strings": [coded["strings"]],
            "shape": [int(s) for s in y.shape[-2:]],
            "checksums": coded["checksums"],
            "quality": self.default_quality if quality is None else int(quality),
        }

    def decompress_latent(
        self,
        strings: Sequence[Sequence[bytes]],
        shape: Sequence[int],
        checksums: Sequence[int] | None = None,
        quality: int | None = None,
        shrink: Sequence[float] | None = None,
        offset: float = 0.0,
    ) -> Tensor:
        """Inverse of :meth:`compress_latent`: the dequantised packed latent ``y_hat``.

        ``shrink`` (a variance per subband) and ``offset`` (added to the image, [0, 1] units)
        change the reconstruction, not the decoding: :mod:`autoenc.codec.despeckle` uses them.

        Raises:
            DeviceMismatchError: the table indexes differ from the encoder's (``checksums``).
            ValueError: a group count other than one.
        """
        if len(strings) != 1:
            raise ValueError(f"a wavelet tile holds one stream, got {len(strings)}")
        device = self.context.ll_anchor.device
        n = len(strings[0])
        f = self.downsampling_factor
        like = _like(int(shape[0]) * f, int(shape[1]) * f, self.levels)
        step = torch.full((n,), self.step_of(quality), device=device)
        y_hat, crcs = self.context.decompress(strings[0], like, step, shrink)
        if checksums is not None:
            for i, (got, want) in enumerate(zip(crcs, checksums, strict=True)):
                if got != int(want):
                    raise DeviceMismatchError(
                        "the entropy parameters computed here differ from the encoder's "
                        f"(item {i}); the file was probably encoded on another kind of device"
                    )
        if offset:  # a constant image c has LL = c * 2**levels (DC gain 2 per level)
            y_hat = Subbands(y_hat.ll + offset * 2.0**self.levels, y_hat.details)
        return pack(y_hat)

    def decode_region(self, y: Tensor, region: Window) -> Tensor:
        """:meth:`decode` cut to ``region``, synthesising only that (the same values)."""
        if isinstance(self.g_s, WaveletSynthesis):  # not a runtime's stand-in (ONNX)
            return self.g_s.region(y, region)
        return super().decode_region(y, region)

    def prepare_decoding(self, quality: int | None = None) -> None:
        """Build the caches that decoding at ``quality`` uses now (inherited by forked workers)."""
        self.context.prepare(self.step_of(quality))

    def compress(self, x: Tensor, quality: int | None = None) -> dict[str, Any]:
        """Image (B, 1, H, W) -> ``{"strings", "shape", "checksums", "quality"}``."""
        return self.compress_latent(self.encode(x), quality)

    def decompress(
        self,
        strings: Sequence[Sequence[bytes]],
        shape: Sequence[int],
        checksums: Sequence[int] | None = None,
        quality: int | None = None,
    ) -> dict[str, Any]:
        """Bytes -> ``{"x_hat"}``; equals eval-mode ``forward`` at the same quality."""
        y_hat = self.decompress_latent(strings, shape, checksums, quality)
        return {"x_hat": self.decode(y_hat).clamp(0.0, 1.0)}
