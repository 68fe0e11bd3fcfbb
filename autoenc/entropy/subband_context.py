# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""A learned, parallel-decodable context model of quantised wavelet subbands (a latent codec).

Every symbol ``q = round(y / step)`` of a Mallat decomposition is coded with a zero-mean
Gaussian whose scale a small CNN predicts from what the decoder already has. The coding order is
a sequence of *stages*; a stage's scales depend only on stages before it, and all the symbols of
a stage are decoded in parallel (He et al. 2021's checkerboard, over subbands with parent
contexts as in iWave's context model; no serial autoregression):

1. LL anchors ((i + j) even): one learned scale, a linear function of log step;
2. the rest of LL, from the decoded anchors;
3. per detail level, coarse to fine, the anchors of its three bands (HL, LH, HH) from the
   low-pass image at that level's resolution (synthesised from all coarser bands) and the
   magnitudes of the parent level's bands;
4. then the rest of the level's three bands, from the same plus the decoded anchors.

The finest levels may be one stage each (all symbols from the anchor net), and the finest of
those may be predicted *at the parent's resolution* (``at_parent``): a net on the parent
level's low-pass image, its signed bands and their magnitudes outputs 4 log-scales per parent
position and band, pixel-shuffled to the level (a quarter of the positions to convolve).

Training, encoding and decoding run the very same stage code (:meth:`SubbandContext._run`): the
decoder only fills in each stage's symbols before the next stage reads them, so the scales it
computes are the encoder's, operation for operation, always in float32 (an autocast around
:meth:`~SubbandContext.compress` or :meth:`~SubbandContext.decompress` is switched off inside,
so a transform run in bf16 changes the coefficients, never the coding). A CRC32 of the table
indexes travels with each stream to catch a decoder on other hardware that computes different
ones.

Symbols are reconstructed at their conditional mean under the predicted Gaussian
(:func:`conditional_mean`), not at the bin centre: +0.2 to +0.5 dB at equal rate on SAR, free.

Invariants:
    * ``likelihoods`` are the exact masses of the rounded symbols under the predicted scales
      (no noise proxy: the transform is fixed, so only the entropy model learns);
    * :meth:`decompress` returns the ``y_hat`` that :meth:`forward` returns for the same input;
    * one range-coded stream per item, whatever the number of stages.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoenc.entropy.gaussian import GaussianConditional
from autoenc.entropy.subband_coding import (
    StageDecoder,
    checkerboard,
    conditional_mean,
    dequantise,
    float32_only,
    grid_indexes,
    positions,
    sums_of_products,
)
from autoenc.layers.integer import IntegerConvNet, round_ste
from autoenc.layers.wavelet import Subbands, idwt2

#: (band indexes, anchors?) of a stage; band index into :func:`flat` order; ``None``: the
#: whole bands (a one-stage level).
Stage = tuple[tuple[int, ...], bool | None]
#: Called by :meth:`SubbandContext._run` with (stage, log-scales of its bands) before the next
#: stage.
Hook = Callable[[Stage, list[Tensor]], None]


def flat(b: Subbands) -> list[Tensor]:
    """The subbands in coding order: LL, then (HL, LH, HH) per level, coarsest first."""
    return [b.ll, *(t for lv in b.details for t in lv)]


def unflat(bands: Sequence[Tensor]) -> Subbands:
    """Inverse of :func:`flat`."""
    levels = (len(bands) - 1) // 3
    details = tuple((bands[1 + 3 * k], bands[2 + 3 * k], bands[3 + 3 * k]) for k in range(levels))
    return Subbands(bands[0], details)


def stages(levels: int, one_stage: int = 0) -> list[Stage]:
    """The coding order: LL anchors, LL rest, then per level its anchors and its rest.

    The ``one_stage`` finest levels are one stage each (``anchors`` is ``None``: all symbols).
    """
    out: list[Stage] = [((0,), True), ((0,), False)]
    for k in range(levels):
        bands = (1 + 3 * k, 2 + 3 * k, 3 + 3 * k)
        out += [(bands, None)] if k >= levels - one_stage else [(bands, True), (bands, False)]
    return out


def _net(cin: int, cout: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(width, width, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Conv2d(width, cout, 3, padding=1),
    )


#: Grid of the LL anchors' log-scale in an integer context (``2**-8``).
LL_ANCHOR_EXP = 8


class SubbandContext(nn.Module):
    """Checkerboard + parent context model of Gaussian scales over quantised subbands.

    Every net outputs a log-scale ``r`` in coefficient units; the coder's scale is
    ``exp(r) / step``. With ``integer=True`` the nets are
    :class:`~autoenc.layers.integer.IntegerConvNet` and the table indexes are exact integer
    comparisons of ``r`` (:meth:`indexes`), so every device and runtime codes the same file.
    """

    def __init__(
        self,
        levels: int,
        width: int = 32,
        widths: Sequence[int] | None = None,
        integer: bool = False,
        one_stage: int = 0,
        at_parent: int = 0,
    ) -> None:
        """Build the context nets.

        ``levels`` detail levels; ``width`` channels of the LL net, ``widths`` per level
        (default ``width`` everywhere); ``integer``: integer-valued nets and exact indexes;
        ``one_stage``: the number of finest levels coded in one stage by their anchor nets
        (no checkerboard, no rest net: see :func:`stages`); ``at_parent``: the number of
        those (finest first, not the coarsest level) whose nets work at the parent's
        resolution.
        """
        super().__init__()
        self.levels = int(levels)
        per_level = [int(width)] * self.levels if widths is None else [int(v) for v in widths]
        if len(per_level) != self.levels or any(v < 1 for v in per_level):
            raise ValueError(f"widths needs {self.levels} positive ints, got {widths}")
        self.integer = bool(integer)
        if not 0 <= int(one_stage) <= self.levels:
            raise ValueError(f"one_stage must be in 0..{self.levels}, got {one_stage}")
        self.one_stage = int(one_stage)
        if not 0 <= int(at_parent) <= min(self.one_stage, self.levels - 1):
            raise ValueError(
                f"at_parent must be in 0..{min(self.one_stage, self.levels - 1)} (one-stage "
                f"levels with a parent level), got {at_parent}"
            )
        self.at_parent = int(at_parent)
        make: Callable[[int, int, int], nn.Module] = IntegerConvNet if integer else _net
        self.ll_anchor = nn.Parameter(torch.tensor([math.log(8.0), 0.0]))
        self.ll_rest = make(2, 1, width)  # masked anchors, log step
        # level k (0 = coarsest): low-pass image, 3 parent magnitudes, log step (+ 3 anchors);
        # at the parent's resolution: its low-pass, 3 signed bands and their magnitudes, log
        # step -> 4 log-scales (2 x 2 children) per band
        self.anchor = nn.ModuleList(
            make(8, 12, per_level[k]) if self._at_parent(k) else make(5, 3, per_level[k])
            for k in range(levels)
        )
        self.rest = nn.ModuleList(make(8, 3, per_level[k]) for k in range(self.two_stage))
        self.gaussian_conditional = GaussianConditional()

    def _at_parent(self, k: int) -> bool:
        """Whether level ``k``'s net works at its parent's resolution."""
        return k >= self.levels - self.at_parent

    @property
    def two_stage(self) -> int:
        """The number of (coarsest) detail levels coded in two checkerboard stages."""
        return self.levels - self.one_stage

    # ---- the stages -------------------------------------------------------------------------

    @staticmethod
    def _to_q(log_scale: Tensor, step: Tensor) -> Tensor:
        """exp(net output) is a scale in coefficient units; the coder wants step units."""
        return torch.exp(log_scale.clamp(-12.0, 12.0)) / step

    def scales(self, log_scales: Sequence[Tensor], step: Tensor) -> list[Tensor]:
        """The Gaussian scales (step units) of the log-scales that :meth:`_run` returns."""
        s = step.view(-1, 1, 1, 1).float().to(log_scales[0].device)
        return [self._to_q(r, s) for r in log_scales]

    def _log_step(self, s: Tensor) -> Tensor:
        """log(step) per item, (B, 1, 1, 1); integer contexts take it from float64 maths."""
        if not self.integer:
            return torch.log(s)
        logs = [math.log(float(v)) for v in s.flatten().tolist()]
        return torch.tensor(logs, dtype=torch.float32, device=s.device).view(-1, 1, 1, 1)

    def _ll_anchor(self, logs: Tensor) -> Tensor:
        """The LL anchors' log-scale (coefficient units), (B, 1, 1, 1)."""
        r = self.ll_anchor[0] + self.ll_anchor[1] * logs
        if not self.integer:
            return r
        g = 2.0**LL_ANCHOR_EXP
        return round_ste(r * g) / g  # on the grid (straight-through in training)

    def stage_exponents(self, stage: Stage) -> list[int]:
        """Per band of ``stage``, the grid exponent of its log-scales (integer contexts)."""
        bands, anchors = stage
        k = (bands[0] - 1) // 3
        if bands == (0,):
            if anchors:
                return [LL_ANCHOR_EXP]
            net = self.ll_rest
        else:
            net = self.rest[k] if anchors is False else self.anchor[k]
        # an IntegerConvNet, or a runtime's stand-in for one (autoenc.codec.onnx.OrtNet)
        exps = [int(e) for e in net.exponents().tolist()]  # type: ignore[operator]
        if bands != (0,) and self._at_parent(k):  # a band's 4 children: the finest of 4 grids
            return [max(exps[4 * b : 4 * b + 4]) for b in range(len(bands))]
        return exps

    def indexes(self, log_scale: Tensor, step: float, exponent: int | None = None) -> Tensor:
        """Table indexes (int32) of log-scales ``log_scale`` of one item coded at ``step``.

        Float contexts snap ``exp(r) / step`` up the scale table
        (:meth:`GaussianConditional.build_indexes`). Integer contexts (``exponent``: the
        grid of ``log_scale``) compare ``r`` with thresholds on its own grid, computed in
        float64 from the table and ``step``: exact, so the same on every device.
        """
        if not self.integer:
            s = torch.tensor(step, dtype=torch.float32, device=log_scale.device)
            return self.gaussian_conditional.build_indexes(self._to_q(log_scale, s))
        r = log_scale.detach().float().cpu().numpy()
        idx = self.index_array(r, step, exponent).astype(np.int32)
        return torch.from_numpy(idx).to(log_scale.device)

    def index_array(
        self, log_scale: npt.NDArray[np.float32], step: float, exponent: int | None = None
    ) -> npt.NDArray[np.integer]:
        """:meth:`indexes` of a float32 numpy array, as a numpy array (what the coder takes)."""
        if not self.integer:
            idx = self.indexes(torch.from_numpy(np.ascontiguousarray(log_scale)), step)
            return idx.numpy().astype(np.intp)
        assert exponent is not None
        table = tuple(self.gaussian_conditional.scale_table.tolist())
        return grid_indexes(log_scale, table, max(float(step), 0.0), int(exponent))

    def prepare(self, step: float) -> None:
        """Build now the caches that coding at ``step`` uses (frozen nets, coder, index tables).

        Forked decode workers (:mod:`autoenc.codec.tile_rows`) then inherit them.
        """
        for net in [self.ll_rest, *self.anchor, *self.rest]:
            if isinstance(net, IntegerConvNet):
                net._cached()
        self.gaussian_conditional._coder()
        if self.integer:
            for stage in stages(self.levels, self.one_stage):
                for e in self.stage_exponents(stage):
                    self.index_array(np.empty(0, np.float32), step, e)

    def _run(self, bands: list[Tensor], step: Tensor, hook: Hook | None = None) -> list[Tensor]:
        """Log-scales (coefficient units) of every symbol of ``bands`` (flat order), stage by stage.

        Each stage reads only bands (or anchors) of earlier stages. With ``hook`` (the decoder),
        ``hook(stage, log_scales)`` fills in the stage's symbols in ``bands`` before the next
        stage.
        """
        s = step.view(-1, 1, 1, 1).float()
        logs = self._log_step(s)
        plan = iter(stages(self.levels, self.one_stage))
        out: list[Tensor] = [torch.empty(0)] * len(bands)

        def done(stage: Stage, values: list[Tensor], mask: Tensor | None) -> None:
            """Record a stage's log-scales (the rest keeps the anchors'), then let the hook fill."""
            for i, v in zip(stage[0], values, strict=True):
                out[i] = v if mask is None or stage[1] else torch.where(mask.bool(), out[i], v)
            if hook is not None:
                hook(stage, values)

        ll = bands[0]
        mask = checkerboard(ll.shape[-2], ll.shape[-1], ll.device)
        done(next(plan), [self._ll_anchor(logs).expand_as(ll)], mask)
        r = self.ll_rest(torch.cat([bands[0] * mask * s / 32.0, logs.expand_as(ll)], 1))
        done(next(plan), [r], mask)
        low = bands[0] * s  # the low-pass image at the coarsest level (LL complete now)
        parents = torch.zeros_like(low).expand(-1, 3, -1, -1)
        up_low, up_level = low, parents  # the parent level's low-pass image and bands
        for k in range(self.levels):
            ix = (1 + 3 * k, 2 + 3 * k, 3 + 3 * k)
            if self._at_parent(k):  # one stage, 2 x 2 log-scales per parent position
                g = up_low / 2.0 ** (self.levels - k + 1)
                feat = torch.cat([g, up_level, up_level.abs(), logs.expand_as(g)], 1)
                a = F.pixel_shuffle(self.anchor[k](feat), 2)
                done(next(plan), list(torch.split(a, 1, 1)), None)
            else:
                feat = torch.cat([low / 2.0 ** (self.levels - k), parents, logs.expand_as(low)], 1)
                a = self.anchor[k](feat)
                if k < self.two_stage:
                    mask = checkerboard(low.shape[-2], low.shape[-1], low.device)
                    done(next(plan), list(torch.split(a, 1, 1)), mask)
                    level = torch.cat([bands[i] for i in ix], 1) * s
                    r = self.rest[k](torch.cat([feat, level * mask], 1))
                    done(next(plan), list(torch.split(r, 1, 1)), mask)
                else:  # one stage: every symbol of the level from the anchor net
                    done(next(plan), list(torch.split(a, 1, 1)), None)
            if k == self.levels - 1:
                break  # the full-resolution image would serve no further level
            level = torch.cat([bands[i] for i in ix], 1) * s  # complete now (decoder)
            up_low, up_level = low, level
            if k + 2 < self.levels or not self._at_parent(k + 1):  # a level still needs it
                hl, lh, hh = torch.split(level, 1, 1)
                low = idwt2(Subbands(low, ((hl, lh, hh),)))
            if not self._at_parent(k + 1):
                parents = F.interpolate(level.abs(), scale_factor=2.0, mode="nearest")
        return out

    # ---- training / evaluation ----------------------------------------------------------------

    def forward(self, y: Subbands, step: Tensor) -> tuple[Subbands, Tensor]:
        """``(y_hat, likelihoods)``: y_hat dequantised (conditional mean), likelihoods (B, N)."""
        s = step.view(-1, 1, 1, 1).float()
        with torch.no_grad():
            q = [torch.round(t.float() / s) for t in flat(y)]
        scales = self.scales(self._run(q, step), step)
        gc = self.gaussian_conditional
        lik = [
            gc._likelihood_floor(gc._likelihood(a, b, None)) for a, b in zip(q, scales, strict=True)
        ]
        y_hat = [conditional_mean(a, b.detach()) * s for a, b in zip(q, scales, strict=True)]
        return unflat(y_hat), torch.cat([t.flatten(1) for t in lik], 1)

    # ---- coding -----------------------------------------------------------------------------

    def compress(self, y: Subbands, step: Tensor) -> dict[str, Any]:
        """``{"strings": [bytes per item], "checksums": [CRC32 of the table indexes per item]}``."""
        s = step.view(-1, 1, 1, 1).float()
        q = [torch.round(t.float() / s) for t in flat(y)]
        if not all(bool((t.abs() < 2**31).all()) for t in q):
            raise ValueError("wavelet symbols do not fit int32 (non-finite input?)")
        with float32_only(q[0].device), sums_of_products(q[0].device, self.integer):
            logr = self._run(q, step)  # the coding never feels an autocast around it
        gc = self.gaussian_conditional
        plan = stages(self.levels, self.one_stage)
        exps = {st: self.stage_exponents(st) if self.integer else None for st in plan}
        strings, checksums = [], []
        for item in range(q[0].shape[0]):
            enc = gc.stream_encoder()
            crc = 0
            item_step = float(s[item])
            for stage in plan:
                bands, anchors = stage
                e = exps[stage]
                for j, i in enumerate(bands):
                    h, w = q[i].shape[-2:]
                    pos = positions(h, w, anchors)
                    sym = q[i][item, 0].detach().to(torch.int32).cpu().numpy().reshape(-1)
                    r = logr[i][item, 0].detach().float().cpu().numpy().reshape(-1)
                    if pos is not None:
                        sym, r = sym[pos], r[pos]
                    idx = self.index_array(r, item_step, None if e is None else e[j])
                    enc.encode(sym, idx)
                    crc = zlib.crc32(idx.astype(np.int32).data, crc)
            strings.append(enc.finish())
            checksums.append(crc)
        return {"strings": strings, "checksums": checksums}

    @torch.no_grad()
    def decompress(
        self,
        strings: Sequence[bytes],
        like: Subbands,
        step: Tensor,
        shrink: Sequence[float] | None = None,
    ) -> tuple[Subbands, list[int]]:
        """Decode ``strings`` into subbands shaped like ``like``; returns (y_hat, index CRCs).

        The caller compares the CRCs with the encoder's (see the module docstring). With
        ``shrink`` (one variance per band, coefficient units, :func:`flat` order), every
        coefficient is multiplied by ``max(0, 1 - shrink_b / (scale * step)²)``: the Wiener
        estimate of a component of that variance removed (decode-time despeckling).
        """
        device = self.ll_anchor.device
        bands = flat(like)
        if shrink is not None and len(shrink) != len(bands):
            raise ValueError(f"shrink needs {len(bands)} band variances, got {len(shrink)}")
        steps = step.float().flatten().tolist()
        decoder = StageDecoder(self, strings, [t.shape[-2:] for t in bands], steps, device)
        with float32_only(device), sums_of_products(device, self.integer):
            logr = self._run(decoder.bands, step.to(device), hook=decoder)
        y_hat = [
            dequantise(q, r, step, None if shrink is None else shrink[i])
            for i, (q, r) in enumerate(zip(decoder.bands, logr, strict=True))
        ]
        return unflat(y_hat), decoder.crcs
