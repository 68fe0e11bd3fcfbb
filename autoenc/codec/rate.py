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


def header_rate(
    model: Any, recorded: dict[str, Any], codec: LoadedCodec, src: str
) -> dict[str, int]:
    """The rate kwargs of a file's header; its step must be the model's step for its quality.

    Raises:
        CorruptStreamError: a malformed quality.
        ModelError: a model whose ladder gives another step (the weights hash does not cover
            the ladder).
    """
    q = recorded.get("quality")
    if q is not None and (isinstance(q, bool) or not isinstance(q, int)):
        raise CorruptStreamError(src, 0, f"header field model.quality {q!r} is not an int")
    try:
        rate = rate_kwargs(model, q, src)
    except ValueError as e:
        raise CorruptStreamError(src, 0, f"header field model.quality: {e}") from None
    if rate and recorded.get("step") != model.step_of(rate["quality"]):
        raise ModelError(
            f"{codec.path} codes quality {rate['quality']} with step "
            f"{model.step_of(rate['quality'])}, but {src} was encoded with step "
            f"{recorded.get('step')!r}: not the encoder's quality ladder"
        )
    return rate


def header_fields(model: Any, rate: dict[str, int]) -> dict[str, Any]:
    """What the header's ``model`` record gets for ``rate``: ``quality`` and its ``step``."""
    if not rate:
        return {}
    return {"quality": rate["quality"], "step": model.step_of(rate["quality"])}
