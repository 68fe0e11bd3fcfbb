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
        model = cls(latent_channels=latent_channels)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
        side = 256 // model.downsampling_factor
        rows.append(
            f"| `{name}` | {doc} | {sum(p.numel() for p in model.network_parameters()):,} "
            f"| {_count(model.g_a):,} / {_count(model.g_s):,} "
            f"| {sum(p.numel() for m in model.entropy_models() for p in m.parameters()):,} "
            f"| {side}×{side}×{latent_channels} |"
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
