# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""What both entropy models share: quantisation, integer tables and coding, rate in bits.

``EntropyModel`` keeps the integer tables as checkpoint buffers, resizes them on load and
codes through `TableCoder`; ``bits`` and ``fp32`` keep every rate computation in float32.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from autoenc.entropy.coder import StreamDecoder, StreamEncoder, TableCoder, quantize_pmf

QuantizeMode = Literal["noise", "dequantize", "symbols"]


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it would push x back above the bound."""

    @staticmethod
    def forward(ctx: Any, inputs: Tensor, bound: float) -> Tensor:
        ctx.save_for_backward(inputs)
        ctx.bound = bound
        return inputs.clamp(min=bound)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        (inputs,) = ctx.saved_tensors
        # A plain clamp would zero the gradient forever once x sits below the bound.
        pass_through = (inputs >= ctx.bound) | (grad_output < 0)
        return grad_output * pass_through, None


def lower_bound(inputs: Tensor, bound: float) -> Tensor:
    """Clamp ``inputs`` below at ``bound`` without killing gradients that raise them."""
    return _LowerBound.apply(inputs, bound)  # type: ignore[no-untyped-call]


def bits(likelihoods: Tensor | Mapping[str, Tensor] | Iterable[Tensor]) -> Tensor:
    """Estimated rate in bits: the sum of ``-log2`` likelihoods, in float32.

    Accepts one tensor, several, or CompressAI's ``{"y": ..., "z": ...}`` dict.
    """
    if isinstance(likelihoods, Tensor):
        tensors = [likelihoods]
    elif isinstance(likelihoods, Mapping):
        tensors = list(likelihoods.values())
    else:
        tensors = list(likelihoods)
    if not tensors:
        raise ValueError("bits() needs at least one likelihood tensor, got none")
    with fp32(tensors[0].device):
        return torch.stack([-torch.log2(t.float()).sum() for t in tensors]).sum()


def _version(t: Tensor) -> int:
    """A tensor's in-place version; an inference tensor has none: a CRC of its bytes then."""
    try:
        return int(t._version)
    except RuntimeError:
        return zlib.crc32(t.detach().cpu().numpy().tobytes())


def fp32(device: torch.device) -> torch.autocast:
    """Context that disables autocast: likelihoods near 1e-9 underflow in fp16/bf16."""
    return torch.autocast(device_type=device.type, enabled=False)


class EntropyModel(nn.Module):
    """Base of the entropy models: quantisation, integer tables and their coding.

    The tables (``_quantized_pmf`` (T, L), ``_pmf_length`` (T,), ``_offset`` (T,)) are
    persistent buffers although they could be recomputed: recomputing them on another
    machine may round differently and desynchronise the decoder, so they travel with the
    checkpoint. Loading resizes them to the saved shapes (they are empty before
    ``update()``). ``_offset[t]`` is the symbol value of bin 0 of table ``t``;
    ``_pmf_length[t]`` counts the bins including the final escape bin.
    """

    _resizable_buffers: tuple[str, ...] = ("_quantized_pmf", "_pmf_length", "_offset")
    _quantized_pmf: Tensor
    _pmf_length: Tensor
    _offset: Tensor

    def __init__(self, likelihood_bound: float = 1e-9) -> None:
        super().__init__()
        if not 0 <= likelihood_bound < 1:
            raise ValueError(f"likelihood_bound must be in [0, 1), got {likelihood_bound!r}")
        self.likelihood_bound = float(likelihood_bound)
        self.register_buffer("_quantized_pmf", torch.zeros(0, 0, dtype=torch.int32))
        self.register_buffer("_pmf_length", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_offset", torch.zeros(0, dtype=torch.int32))

    @property
    def has_tables(self) -> bool:
        """Whether ``update()`` has built (or a checkpoint has loaded) the coding tables."""
        return self._offset.numel() > 0

    def quantize(self, inputs: Tensor, mode: QuantizeMode, means: Tensor | None = None) -> Tensor:
        """Noise (training), rounding around ``means`` (eval) or integer symbols (coding).

        Raises:
            ValueError: for an unknown ``mode``, or symbols that are not finite or do not
                fit int32 (casting would wrap them silently).
        """
        if mode == "noise":
            return inputs + torch.empty_like(inputs).uniform_(-0.5, 0.5)
        centred = inputs if means is None else inputs - means
        rounded = torch.round(centred)
        if mode == "symbols":
            if rounded.numel() and not bool((rounded.abs() < 2**31).all()):
                worst = rounded.flatten()[rounded.abs().nan_to_num(math.inf).argmax()]
                raise ValueError(f"symbol {float(worst)} does not fit int32 (or is not finite)")
            return rounded.to(torch.int32)
        if mode == "dequantize":
            return rounded if means is None else rounded + means
        raise ValueError(f"mode must be 'noise', 'dequantize' or 'symbols', got {mode!r}")

    def dequantize(self, symbols: Tensor, means: Tensor | None = None) -> Tensor:
        """Integer symbols back to float32 values, shifted by ``means`` when given."""
        values = symbols.float()
        return values if means is None else values + means

    def _likelihood_floor(self, likelihood: Tensor) -> Tensor:
        """Apply ``likelihood_bound`` so the rate term stays finite."""
        if self.likelihood_bound > 0:
            return lower_bound(likelihood, self.likelihood_bound)
        return likelihood

    def _set_tables(self, pmf: Tensor, lengths: Tensor, offsets: Tensor) -> None:
        """Quantise float PMFs (T, L), escape bin included, and store them as buffers."""
        counts = quantize_pmf(pmf.detach().double().cpu().numpy(), lengths.cpu().numpy())
        device = self._offset.device
        self._quantized_pmf = torch.from_numpy(counts).to(device)
        self._pmf_length = lengths.to(device=device, dtype=torch.int32)
        self._offset = offsets.to(device=device, dtype=torch.int32)

    def _coder(self) -> TableCoder:
        if not self.has_tables:
            raise RuntimeError(f"{type(self).__name__} has no tables; call update() first")
        tables = (self._quantized_pmf, self._pmf_length, self._offset)
        versions = tuple(_version(t) for t in tables)
        cache = self.__dict__.get("_coder_cache")  # not state: rebuilt when a table changes
        # the cache holds the tables themselves, so "the same tensor" is identity, not an address
        if (
            cache is None
            or cache[1] != versions
            or any(a is not b for a, b in zip(cache[0], tables, strict=True))
        ):
            pmf, length, offset = (t.cpu().numpy() for t in tables)
            cache = (tables, versions, TableCoder(pmf, length, offset))
            self.__dict__["_coder_cache"] = cache
        return cache[2]

    def stream_encoder(self) -> StreamEncoder:
        """An empty single-stream encoder over this model's tables (see :class:`StreamEncoder`)."""
        return StreamEncoder(self._coder())

    def stream_decoder(self, data: bytes) -> StreamDecoder:
        """A decoder of a :meth:`stream_encoder` stream."""
        return StreamDecoder(self._coder(), data)

    def _compress_symbols(self, symbols: Tensor, indexes: Tensor) -> list[bytes]:
        """One string per batch item; ``symbols`` and ``indexes`` are (B, ...)."""
        coder = self._coder()
        symbols_np = symbols.cpu().numpy()
        indexes_np = indexes.expand_as(symbols).cpu().numpy()
        return [coder.encode(s, i) for s, i in zip(symbols_np, indexes_np, strict=True)]

    def _decompress_symbols(self, strings: Sequence[bytes], indexes: Tensor) -> Tensor:
        """Decode (B, ...) int32 symbols; ``indexes`` is (B, ...) or broadcasts from (1, ...)."""
        if indexes.shape[0] not in (1, len(strings)):
            raise ValueError(f"got {len(strings)} strings for indexes of shape {indexes.shape}")
        coder = self._coder()
        per_item = indexes.expand(len(strings), *indexes.shape[1:]).cpu().numpy()
        decoded = [coder.decode(s, i) for s, i in zip(strings, per_item, strict=True)]
        # B x (prod(...),) -> (B, ...)
        stacked = np.stack(decoded) if decoded else np.zeros((0,), dtype=np.int32)
        return torch.from_numpy(stacked.reshape(per_item.shape)).to(indexes.device)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Table shapes depend on the learned quantiles; adopt the saved ones before copying.
        for name in self._resizable_buffers:
            saved = state_dict.get(prefix + name)
            current = self._buffers.get(name)
            if isinstance(saved, Tensor) and current is not None and saved.shape != current.shape:
                self._buffers[name] = torch.empty(
                    saved.shape, dtype=current.dtype, device=current.device
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
