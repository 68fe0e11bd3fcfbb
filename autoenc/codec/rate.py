# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The operating point of a variable-rate model in a scene file: chosen, recorded, checked.

A variable-rate model (``model.variable_rate``) codes at ``quality`` Q, the index of a step in
its ladder (part of its config, so of the checkpoint). The header records both ``quality`` and
``step``; the decoder checks that its model gives the same step for that quality, because the
weights hash does not cover the ladder.
"""

from __future__ import annotations

from typing import Any

from autoenc.codec.container import CorruptStreamError
from autoenc.codec.header import ModelRecord
from autoenc.codec.model_io import LoadedCodec, ModelError


def rate_kwargs(model: Any, quality: int | None, source: str) -> dict[str, int]:
    """``{"quality": Q}`` for a variable-rate model (its default if None), ``{}`` otherwise.

    Raises:
        ValueError: a quality for a fixed-rate model, or one outside the model's ladder.
    """
    if not getattr(model, "variable_rate", False):
        if quality is not None:
            raise ValueError(f"{source}: this model has a single rate; it takes no quality")
        return {}
    q = model.default_quality if quality is None else quality
    model.step_of(q)  # validates
    return {"quality": int(q)}


def header_rate(model: Any, recorded: ModelRecord, codec: LoadedCodec, src: str) -> dict[str, int]:
    """The rate kwargs of a file's header; its step must be the model's step for its quality.

    Raises:
        CorruptStreamError: a quality outside the model's ladder, or one for a fixed-rate model.
        ModelError: a model whose ladder gives another step (the weights hash does not cover
            the ladder).
    """
    try:
        rate = rate_kwargs(model, recorded.quality, src)
    except ValueError as e:
        raise CorruptStreamError(src, 0, f"header field model.quality: {e}") from None
    if rate and recorded.step != model.step_of(rate["quality"]):
        raise ModelError(
            f"{codec.path} codes quality {rate['quality']} with step "
            f"{model.step_of(rate['quality'])}, but {src} was encoded with step "
            f"{recorded.step!r}: not the encoder's quality ladder"
        )
    return rate


def recorded_rate(model: Any, rate: dict[str, int]) -> tuple[int | None, float | None]:
    """What the header's model record gets for ``rate``: ``(quality, its step)`` or Nones."""
    if not rate:
        return None, None
    return rate["quality"], float(model.step_of(rate["quality"]))
