# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""A trained checkpoint as a codec for evaluation: real bytes in, real decode out.

The rate is counted from the bytes a patch costs inside an ``.aec`` scene file: the ``TILE``
payload (tile position, string lengths, the entropy-coded strings, the checksum field) plus
the chunk framing (type, length, CRC). The per-file JSON header is not counted: in a scene it
is shared by every tile (about 1-2 kB per file, 0.01 bpp of a 1024² scene), just as the JP2
boxes of a classical file are counted once per file on the other side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from autoenc.codec.despeckle import Despeckle, decode_kwargs
from autoenc.codec.model_io import LoadedCodec, load_codec
from autoenc.codec.payload import pack_tile
from autoenc.codec.rate import rate_kwargs

#: Chunk framing in an ``.aec`` file: 4-byte type, 8-byte length, 4-byte CRC32.
CHUNK_FRAMING_BYTES = 16


@dataclass
class LearnedResult:
    """One batch coded for real."""

    x_hat: Tensor  # (B, 1, H, W) decoded from the bytes, clamped to [0, 1]
    nbytes: list[int]  # per sample, TILE payload + framing
    stream_bytes: list[int]  # per sample, the entropy-coded strings alone
    encode_s: float  # wall time of the batch (device synchronised)
    decode_s: float


class LearnedCodec:
    """Wrap a checkpoint: ``code(x)`` compresses and decompresses a batch for real."""

    def __init__(
        self,
        path: str | Path,
        name: str,
        device: str | torch.device = "cpu",
        quality: int | None = None,
        despeckle: Despeckle | None = None,
    ) -> None:
        """Load ``path`` (weights only) on ``device``; ``name`` labels its records.

        ``quality`` is the operating point of a variable-rate model (default: its default);
        ``despeckle`` a decode-time despeckling (:mod:`autoenc.codec.despeckle`).

        Raises:
            ValueError: a quality for a fixed-rate model, or one outside the model's ladder.
        """
        self.loaded: LoadedCodec = load_codec(path, device)
        self.name = name
        self.device = torch.device(device)
        model = self.loaded.model
        self.factor = int(model.downsampling_factor)
        self.rate = rate_kwargs(model, quality, f"{path} ({name})")
        self.decode_extra = decode_kwargs(
            model, despeckle or Despeckle(), self.window_db, self.rate.get("quality")
        )

    @property
    def spec(self) -> dict[str, Any]:
        """The model's ``{class_path, init_args}``."""
        return self.loaded.spec

    @property
    def window_db(self) -> tuple[float, float]:
        """The dB window the checkpoint was trained on."""
        return self.loaded.preprocessing.normalisation.window

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def code(self, x: Tensor) -> LearnedResult:
        """Compress and decompress ``x`` (B, 1, H, W) in [0, 1]; H and W multiples of the factor.

        Raises:
            ValueError: a side that is not a multiple of the model's downsampling factor.
        """
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"{self.name}: patch {h}x{w} is not a multiple of the model's downsampling "
                f"factor {self.factor}"
            )
        model = self.loaded.model
        x = x.to(self.device, torch.float32)
        self._sync()
        t0 = time.perf_counter()
        coded = model.compress(x, **self.rate)
        self._sync()
        t1 = time.perf_counter()
        strings: list[list[bytes]] = coded["strings"]
        checksums = coded.get("checksums")
        kwargs: dict[str, Any] = {"checksums": checksums} if checksums is not None else {}
        kwargs.update(self.rate)
        kwargs.update(self.decode_extra)
        y_hat = model.decompress_latent(strings, coded["shape"], **kwargs)
        param = next(model.parameters())
        x_hat = model.decode(y_hat.to(device=param.device, dtype=param.dtype)).float()
        self._sync()
        t2 = time.perf_counter()
        nbytes, stream = [], []
        for i in range(x.shape[0]):
            groups = [group[i] for group in strings]
            chk = None if checksums is None else int(checksums[i])
            nbytes.append(len(pack_tile(0, 0, groups, chk)) + CHUNK_FRAMING_BYTES)
            stream.append(sum(len(g) for g in groups))
        return LearnedResult(x_hat.clamp_(0.0, 1.0), nbytes, stream, t1 - t0, t2 - t1)
