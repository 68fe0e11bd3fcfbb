# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Faster wavelet codecs derived from a trained one (``autoenc export --one-stage/--at-parent``).

A wavelet codec's transform is fixed, so the rate of a level depends only on the nets that
predict that level's scales: a derivation may change those nets and keep every other weight.

* :func:`with_decode_args` sets decode-time defaults (despeckling; no weight, no bit);
* :func:`with_one_stage` codes the ``n`` finest levels in one stage each, with their anchor
  nets (their rest nets are dropped; no training);
* :func:`with_at_parent` replaces the nets of the ``n`` finest one-stage levels by nets at the
  parent's resolution (:class:`~autoenc.entropy.subband_context.SubbandContext`,
  ``at_parent``), trained here on those levels' rate alone, every other weight frozen.

Invariants:
    * every weight the derivation does not name is copied unchanged;
    * the derived codec has its own ``weights_sha256`` (its files carry another hash);
    * :func:`with_at_parent` is seeded: the same codec, data and arguments give the same nets
      on the same machine and thread count.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch only where a derivation runs (the export command's start stays light)
    import torch

log = logging.getLogger("autoenc.export")

#: Defaults of :func:`with_at_parent`'s fit: 4,000 steps of 8 random 128-px crops (~3 min on
#: 2 CPU cores), Adam at 2e-3 with a cosine decay.
FIT_STEPS = 4000
FIT_BATCH = 8
FIT_CROP = 128
FIT_LR = 2e-3


def _rebuilt(codec: Any, changes: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A fresh model of ``codec``'s spec with ``changes`` to its init args, and that spec."""
    from autoenc.models import build_model

    spec = {**codec.spec, "init_args": {**(codec.spec.get("init_args") or {}), **changes}}
    return build_model(spec), spec


def _finish(codec: Any, model: Any, spec: dict[str, Any]) -> Any:
    from autoenc.codec.model_io import weights_sha256

    digest = weights_sha256(model.state_dict())  # other weights: another hash in file headers
    return dataclasses.replace(codec, model=model.eval(), spec=spec, weights_sha256=digest)


def _wavelet(codec: Any, flag: str) -> Any:
    from autoenc.models.wavelet import WaveletCodec

    if not isinstance(codec.model, WaveletCodec):
        raise ValueError(f"{flag}: {codec.path} is not a wavelet codec")
    return codec.model


#: Model arguments that only change how files are decoded by default (no weight, no bit).
DECODE_ARGS = ("despeckle", "speckle_product")


def with_decode_args(codec: Any, items: list[str]) -> Any:
    """``codec`` rebuilt with decode-time arguments ``KEY=JSON`` set in its spec.

    Raises:
        ValueError: a malformed item, a key that is not a decode-time argument, or values
            the model refuses.
    """
    from autoenc.models import build_model

    if not items:
        return codec
    spec = {**codec.spec, "init_args": dict(codec.spec.get("init_args") or {})}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in DECODE_ARGS:
            raise ValueError(f"--model-arg {item!r}: expected KEY=JSON with KEY in {DECODE_ARGS}")
        try:
            spec["init_args"][key] = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"--model-arg {item!r}: {e}") from None
    model = build_model(spec)
    model.load_state_dict(codec.model.state_dict())
    return dataclasses.replace(codec, model=model.eval(), spec=spec)


def with_one_stage(codec: Any, n: int) -> Any:
    """``codec`` (a wavelet codec) with its ``n`` finest levels coded in one stage each.

    The anchor nets of those levels, trained on half of their symbols, predict all of them
    (their inputs hold nothing of the level itself); the levels' rest nets are dropped.

    Raises:
        ValueError: not a wavelet codec, ``n`` outside 0..levels, or fewer one-stage levels
            than the codec already has (their rest nets do not exist).
    """
    ctx = _wavelet(codec, "--one-stage").context
    if n < ctx.one_stage:
        raise ValueError(
            f"--one-stage {n}: {codec.path} already codes {ctx.one_stage} "
            "levels in one stage, and has no rest nets to bring back"
        )
    model, spec = _rebuilt(codec, {"one_stage": n})  # ValueError for n outside 0..levels
    state = codec.model.state_dict()
    own = set(model.state_dict())
    dropped = sorted(set(state) - own)
    assert not own - set(state) and all(k.startswith("context.rest.") for k in dropped)
    model.load_state_dict({k: v for k, v in state.items() if k in own})
    return _finish(codec, model, spec)


def with_at_parent(
    codec: Any,
    n: int,
    width: int,
    data: Path,
    steps: int = FIT_STEPS,
    seed: int = 0,
    crop: int = FIT_CROP,
) -> Any:
    """``codec`` with the nets of its ``n`` finest levels at the parent's resolution, fitted.

    The new nets (``width`` channels) start from a seeded random init and are trained for
    ``steps`` Adam steps on random ``crop``-px crops of ``data``'s train split at random steps
    (the codec's training distribution), minimising the exact rate of the rounded symbols;
    every other weight is the codec's, frozen. The log shows the levels' bits per symbol on
    the validation split with the old and the new nets.

    Raises:
        ValueError: not a wavelet codec, ``n`` levels that are not one-stage levels with a
            parent, a non-positive width or step count, or a dataset that does not load.
    """
    import torch

    old = _wavelet(codec, "--at-parent")
    if width < 1 or steps < 1:
        raise ValueError(f"--at-parent: width and steps must be positive, got {width}, {steps}")
    levels = old.levels
    widths = list(old.context.anchor[k].layers()[0].out_channels for k in range(levels))
    for k in range(levels - n, levels):
        widths[k] = int(width)
    model, spec = _rebuilt(codec, {"at_parent": n, "widths": widths})  # ValueError for bad n
    state = codec.model.state_dict()
    fresh = {f"context.anchor.{k}." for k in range(levels - n, levels)}
    new_state = model.state_dict()
    assert set(new_state) == set(state)
    torch.manual_seed(seed)
    for k in range(levels - n, levels):  # a seeded init, whatever was built before
        for layer in model.context.anchor[k].layers():
            layer.reset_parameters()
    model.load_state_dict(
        {k: v for k, v in state.items() if not any(k.startswith(p) for p in fresh)},
        strict=False,
    )
    _fit(model, range(levels - n, levels), old, data, steps, crop)
    return _finish(codec, model, spec)


def _fit(model: Any, trained: range, old: Any, data: Path, steps: int, crop: int) -> None:
    """Train the anchor nets of levels ``trained`` of ``model`` on their rate (in place)."""
    import torch

    from autoenc.data.datamodule import PatchDataModule

    dm = PatchDataModule(
        root=str(data), batch_size=FIT_BATCH, num_workers=0, crop_size=crop, augment=True
    )
    dm.setup("fit")
    ctx = model.context
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for k in trained for p in ctx.anchor[k].parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=FIT_LR)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, steps) / steps))
    )
    val = _validation(dm, model)
    log.info("--at-parent: levels %s, bits/symbol on val before: %s (old nets %s)",
             list(trained), _bits(model, val, trained), _bits(old, val, trained))  # fmt: skip
    model.train()
    step = 0
    while step < steps:
        for batch in dm.train_dataloader():
            x = dm.on_after_batch_transfer(batch, 0)["image"]
            s = model.sample_steps(x.shape[0], x.device)
            # the rate of the trained levels; every other term is constant in their weights
            loss = _level_bits(model, x, s, trained) / x.numel()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 500 == 0 or step == steps:
                log.info("--at-parent: step %d/%d, bits/symbol on val %s",
                         step, steps, _bits(model, val, trained))  # fmt: skip
            if step >= steps:
                break
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()


def _level_bits(model: Any, x: torch.Tensor, s: torch.Tensor, levels: range) -> torch.Tensor:
    """Bits of the symbols of the finest levels ``levels`` of images ``x`` at steps ``s``.

    The context's flat likelihoods hold LL (one per LL position), then per level, coarsest
    first, 3 bands of ``4**k`` per LL position: level ``k`` starts at ``4**k`` of them, so the
    finest levels from ``levels.start`` on are the tail from ``4**levels.start`` on.
    """
    import torch

    from autoenc.layers.wavelet import dwt2

    assert levels.stop == model.levels  # the finest levels: a tail of the likelihoods
    _, lik = model.context(dwt2(x.float() - 0.5, model.levels), s)
    ll = (x.shape[-2] >> model.levels) * (x.shape[-1] >> model.levels)
    return -torch.log2(lik[:, ll * 4**levels.start :]).sum()


def _validation(dm: Any, model: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few validation patches at every other rung of the ladder (fixed)."""
    import torch

    out = []
    for i, batch in enumerate(dm.val_dataloader()):
        x = dm.on_after_batch_transfer(batch, 0)["image"]
        for st in model.steps[::2]:
            out.append((x, torch.full((x.shape[0],), float(st))))
        if i >= 3:
            break
    return out


def _bits(model: Any, val: list[tuple[torch.Tensor, torch.Tensor]], levels: range) -> str:
    """Bits per symbol of levels ``levels`` over ``val``."""
    import torch

    was = model.training
    model.eval()
    total = count = 0.0
    with torch.no_grad():
        for x, s in val:
            total += float(_level_bits(model, x, s, levels))
            count += x.numel() * (1 - 4.0 ** (levels.start - model.levels))  # their symbols
    model.train(was)
    return f"{total / count:.4f}"
