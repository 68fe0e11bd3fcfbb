# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Integer-valued convolutional nets: the same outputs on every device, thread count and runtime.

An entropy decoder must compute the encoder's probability tables bit for bit, or it decodes
garbage. Float convolutions do not promise that: the order of a sum changes its rounding, and
that order depends on the CPU's vector width, the thread count, the GPU kernel or the ONNX
runtime. Integer networks (Ballé, Johnston & Minnen 2019, "Integer networks for data
compression with latent-variable models") remove the problem at the root; here they are run as
**integer-valued float32**, which every backend computes exactly:

* inputs, weights and activations are integers on fixed power-of-two grids, so every product
  is an integer and every partial sum an integer below ``2**24`` (the bounds below), which
  float32 represents exactly, whatever the summation order (an FMA included);
* rescaling is by powers of two (exact), the leaky slope is ``1/8`` (exact), rounding is
  ``round`` half to even (``torch.round`` and ONNX ``Round`` alike), clamping is exact.

So ``conv2d`` through oneDNN with 1 or 16 threads, cuBLAS (TF32 included: the operands fit its
11-bit mantissa) and onnxruntime's MLAS all return the same integers. Not covered: convolution
algorithms that are not sums of products (Winograd, FFT), which a GPU backend must not pick for
these layers.

Training uses the straight-through estimator for every rounding (the forward values are the
exact integer path's). Weights are quantised on the fly from the float parameters with a
power-of-two scale per output channel found with :func:`torch.frexp` (exact), so a checkpoint
stores ordinary float weights and every runtime derives the same integers from them.

Invariants (the grids of :func:`activation_grid` keep ``fan_in * amax * W_MAX + B_MAX``
below ``2**24``):
    * :meth:`IntegerConvNet.forward` returns ``acc * 2**-e`` per output channel, ``acc`` an
      exact integer, so a comparison of the output with a threshold on that grid is exact;
    * ``e`` (:meth:`IntegerConvNet.exponents`) depends on the weights only.
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Every activation (inputs included) lies in ``[-RANGE, RANGE]``; its grid is the finest
#: power of two that keeps the next layer's sums exact (:func:`activation_grid`).
RANGE = 4.0
#: Weights: integers in ``[-W_MAX, W_MAX]`` on a power-of-two grid per output channel.
W_MAX = 127
#: Biases: integers in ``[-B_MAX, B_MAX]`` on the accumulator's grid.
B_MAX = 2**22
#: Exactness bound of float32 integers.
EXACT = 2**24
#: Leaky ReLU slope: a power of two, so the activation is exact.
SLOPE = 0.125


def activation_grid(fan_in: int) -> tuple[int, int]:
    """``(exp, amax)``: activations are integers in ``[-amax, amax]`` times ``2**-exp``.

    The largest ``amax = 2**k - 1`` with ``fan_in * amax * W_MAX + B_MAX < EXACT``, and
    ``exp`` such that ``amax * 2**-exp`` is just under :data:`RANGE`.

    Raises:
        ValueError: a fan-in too large for even 4-bit activations.
    """
    k = 1
    while fan_in * (2 ** (k + 1) - 1) * W_MAX + B_MAX < EXACT:
        k += 1
    if k < 4:
        raise ValueError(f"fan-in {fan_in} is too large for exact float32 integer sums")
    return k - int(math.log2(RANGE)), 2**k - 1


def round_ste(x: Tensor) -> Tensor:
    """``round`` forward (half to even), identity backward (straight-through)."""
    if not x.requires_grad:
        return torch.round(x)
    return x + (torch.round(x) - x).detach()


def weight_exponents(weight: Tensor) -> Tensor:
    """Per output channel, the largest int ``f`` with ``max|w| * 2**f <= W_MAX`` (exact).

    From :func:`torch.frexp` (``peak = m * 2**e``, ``0.5 <= m < 1``): ``m * 2**7 <= 127``
    decides between ``7 - e`` and ``6 - e``. A channel of zeros gets 0.
    """
    peak = weight.detach().abs().flatten(1).amax(1)
    m, e = torch.frexp(peak)
    f = torch.where(m * 128.0 <= W_MAX, 7 - e, 6 - e)
    return torch.where(peak > 0, f, torch.zeros_like(f))


def _pow2(f: Tensor, dtype: torch.dtype) -> Tensor:
    """``2**f`` (exact) for an int tensor ``f``, shaped to scale the channels of NCHW."""
    return torch.ldexp(torch.ones_like(f, dtype=dtype), f).view(1, -1, 1, 1)


def _integers(conv: nn.Conv2d, in_exp: int) -> tuple[Tensor, Tensor, Tensor]:
    """(integer weight, integer bias, rescale) of ``conv`` for inputs on ``2**-in_exp``.

    ``conv(a, w, b) * rescale`` is the layer's real output, exactly; the roundings are
    straight-through when the weights take gradients.
    """
    f = weight_exponents(conv.weight)
    scale = _pow2(f, conv.weight.dtype)
    w = round_ste(conv.weight * scale.view(-1, 1, 1, 1)).clamp(-W_MAX, W_MAX)
    assert conv.bias is not None
    b = round_ste(conv.bias * scale.flatten() * 2.0**in_exp).clamp(-B_MAX, B_MAX)
    return w, b, _pow2(-(f + in_exp), conv.weight.dtype)


class IntegerConvNet(nn.Module):
    """conv3x3 -> leaky -> conv3x3 -> leaky -> conv3x3 on integer grids (see the module doc).

    ``forward(x)`` takes float features (quantised to the input grid, clamped to
    +-:data:`RANGE`) and returns, per output channel ``c``, the float value
    ``acc_c * 2**-exponents()[c]`` of the last layer's integer accumulator.
    """

    def __init__(self, cin: int, cout: int, width: int) -> None:
        super().__init__()
        self.grids = (activation_grid(9 * cin), activation_grid(9 * width))
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(cin, width, 3, padding=1),
                nn.Conv2d(width, width, 3, padding=1),
                nn.Conv2d(width, cout, 3, padding=1),
            ]
        )

    def layers(self) -> list[nn.Conv2d]:
        """The three convolutions, typed."""
        return [cast(nn.Conv2d, c) for c in self.convs]

    def exponents(self) -> Tensor:
        """Per output channel, the grid exponent of the output (int tensor)."""
        return weight_exponents(self.layers()[-1].weight) + self.grids[1][0]

    def forward(self, x: Tensor) -> Tensor:
        """Training: straight-through; inference (float32): the cached :meth:`frozen` net."""
        w = self.layers()[0].weight
        if w.dtype == torch.float32 and not (torch.is_grad_enabled() and w.requires_grad):
            return self._cached().forward(x)
        return self.forward_ste(x)

    def _cached(self) -> FrozenIntegerNet:
        """:meth:`frozen`, rebuilt whenever a parameter changed (in place or replaced)."""
        key = tuple((p.data_ptr(), p._version, p.device) for p in self.parameters())
        cache = self.__dict__.get("_frozen_cache")  # not a submodule: no state_dict entry
        if cache is None or cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cache = (key, self.frozen())
            self.__dict__["_frozen_cache"] = cache
        return cache[1]

    def forward_ste(self, x: Tensor) -> Tensor:
        """The net with straight-through rounding: what training differentiates."""
        (in_exp, in_max), (h_exp, h_max) = self.grids
        dtype = self.layers()[0].weight.dtype  # float32; float64 only to check exactness
        a = round_ste(x.to(dtype) * 2.0**in_exp).clamp(-in_max, in_max)
        last = len(self.convs) - 1
        for i, conv in enumerate(self.layers()):
            w, b, back = _integers(conv, in_exp)
            acc = F.conv2d(a, w, b, padding=1)  # exact integers
            if i == last:
                return acc * back
            a = round_ste(F.leaky_relu(acc, SLOPE) * back * 2.0**h_exp).clamp(-h_max, h_max)
            in_exp = h_exp
        raise AssertionError("unreachable")

    def frozen(self) -> FrozenIntegerNet:
        """The same function with its integers baked in (no ``frexp``): what ONNX exports."""
        return FrozenIntegerNet(self)


class FrozenIntegerNet(nn.Module):
    """An :class:`IntegerConvNet` with its integers and power-of-two rescales as constants.

    ``forward`` computes the very same values, hence the same output bits. Each layer's
    power-of-two rescale is folded into its integer weights and bias (``w * 2**k`` keeps every
    product and every partial sum exact: the same values, one elementwise pass fewer).
    """

    def __init__(self, net: IntegerConvNet) -> None:
        super().__init__()
        (in_exp, in_max), (h_exp, h_max) = net.grids
        self.in_scale, self.in_max = 2.0**in_exp, float(in_max)
        self.h_scale, self.h_max = 2.0**h_exp, float(h_max)
        exps = [in_exp, h_exp, h_exp]
        with torch.no_grad():
            for i, (conv, e) in enumerate(zip(net.layers(), exps, strict=True)):
                w, b, back = (t.float() for t in _integers(conv, e))  # integers: exact
                # hidden layers go straight to the next grid: back * 2**h_exp, a power of two
                mult = (back if i == 2 else back * self.h_scale).flatten()
                self.register_buffer(f"w{i}", w * mult.view(-1, 1, 1, 1))
                self.register_buffer(f"b{i}", b * mult)
        self.to(net.layers()[0].weight.device)

    def forward(self, x: Tensor) -> Tensor:
        """The net, channels-last inside, NCHW out.

        Channels-last convolutions are about 2x faster on CPU at 8-16 channels, and exact
        integers do not depend on the summation order.
        """
        a = x.float().contiguous(memory_format=torch.channels_last) * self.in_scale
        a = a.round_().clamp_(-self.in_max, self.in_max)
        for i in range(3):
            acc = F.conv2d(a, getattr(self, f"w{i}"), getattr(self, f"b{i}"), padding=1)
            if i == 2:
                return acc.contiguous()
            a = F.leaky_relu(acc, SLOPE, inplace=True).round_().clamp_(-self.h_max, self.h_max)
        raise AssertionError("unreachable")
