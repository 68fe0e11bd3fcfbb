# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The variants table of the README, computed from the registry (never typed by hand)."""

from __future__ import annotations

import sys

from torch import nn

from autoenc.models.registry import MODELS, list_models


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def variants_table(latent_channels: int = 16) -> str:
    """Markdown table of the variants: description, parameter counts, latent of 256²."""
    rows = [
        "| variant (`class_path: autoenc.models.…`) | what it is | transform parameters "
        "| g_a / g_s | entropy model | latent of a 256² patch |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name in list_models():
        cls = MODELS[name]
        # a variable-rate codec has a fixed latent (its own default); the others take C
        model = cls() if cls.variable_rate else cls(latent_channels=latent_channels)  # type: ignore[call-arg]
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        side = 256 // model.downsampling_factor
        net = sum(p.numel() for p in model.network_parameters())
        entropy = sum(p.numel() for m in model.entropy_models() for p in m.parameters())
        context = getattr(model, "context", None)  # a learned context model is entropy model
        if isinstance(context, nn.Module):
            net, entropy = net - _count(context), entropy + _count(context)
        c = model.latent_channels
        rows.append(
            f"| `{name}` | {doc} | {net:,} | {_count(model.g_a):,} / {_count(model.g_s):,} "
            f"| {entropy:,} | {side}×{side}×{c} ({side * side * c / 65536:g} per px) |"
        )
    return "\n".join(rows) + "\n"


def variants_main(argv: list[str] | None = None) -> int:
    """``autoenc variants [--latent-channels C]``: print the table."""
    import argparse

    parser = argparse.ArgumentParser(prog="autoenc variants", description=variants_main.__doc__)
    parser.add_argument("--latent-channels", type=int, default=16)
    args = parser.parse_args(argv)
    sys.stdout.write(variants_table(args.latent_channels))
    return 0
