# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""``autoenc export``: a trained checkpoint -> shipped safetensors weights + a measured model card.

The command exports the weights (:func:`autoenc.codec.model_io.export_safetensors`), evaluates
the export at every quality of its ladder against JPEG 2000 on a split of a patch dataset (real
bytes on both sides, the runner of ``autoenc evaluate``), writes the full report next to it
and renders the card: ``<name>.md`` for people and ``<name>.json`` with the same numbers for
programs (the reproduction check of ``make codec-model`` compares two of them,
:func:`compare_cards`). Every number in the card comes from this one command, named in it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("autoenc.export")

#: Rate at which the card compares clean-truth PSNR and ENL ratio with JPEG 2000.
CARD_BPP = 0.1


def _bd(b: Any) -> dict[str, Any]:
    return {"value": float(b.value), "ci": [float(b.ci_lo), float(b.ci_hi)],
            "overlap": [float(v) for v in b.point.overlap]}  # fmt: skip


def measure(model_path: Path, data: Path, out: Path, split: str = "test",
            limit: int | None = None, n_boot: int = 1000) -> dict[str, Any]:  # fmt: skip
    """Evaluate ``model_path`` at every quality vs JPEG 2000; the card's numbers (a dict)."""
    from autoenc.evaluation.compare import Pretrained
    from autoenc.evaluation.records import Results
    from autoenc.evaluation.report import write_report
    from autoenc.evaluation.runner import EvalConfig, ModelSpec, evaluate
    from autoenc.evaluation.summary import (
        bd_table,
        matched_deltas,
        nearest,
        operating_points,
        scene_groups,
    )

    name = "codec"
    specs = [ModelSpec(name, p, model_path, q) for p, q in Pretrained(name, model_path).points()]
    cfg = EvalConfig(root=data, split=split, models=specs, codecs=["jpeg2000"], limit=limit)
    results: Results = evaluate(cfg, out)
    write_report(results, out, n_boot=n_boot)
    points = operating_points(results, n_boot=n_boot)
    card: dict[str, Any] = {"dataset": str(data), "split": split, "n": results.meta["n"],
                            "scenes": len(results.meta["scenes"]),
                            "psnr_cap": results.meta["psnr_cap"]}  # fmt: skip
    card["qualities"] = [
        {"quality": s.quality, "bpp": p.mean("bpp"), "psnr": p.mean("psnr"),
         "psnr_truth": p.mean("psnr_truth"), "enl_ratio": p.mean("enl_ratio")}
        for s in specs for p in points if p.method == s.name
    ]  # fmt: skip
    card["jpeg2000"] = [
        {"bpp": p.mean("bpp"), "psnr": p.mean("psnr"), "psnr_truth": p.mean("psnr_truth")}
        for p in points if p.curve == "jpeg2000" and p.role == "ladder"
    ]  # fmt: skip
    for key, groups in (("bd", None), ("bd_scene", scene_groups(results))):
        if groups is not None and len(set(groups.tolist())) < 2:
            continue
        rows = [r for r in bd_table(points, "psnr", n_boot=n_boot, groups=groups)
                if r.curve == name]  # fmt: skip
        if rows:
            card[key] = {"bd_rate": _bd(rows[0].bd_rate), "bd_psnr": _bd(rows[0].bd_quality)}
    near = nearest([p for p in points if p.curve == name], CARD_BPP).get(name)
    if near is not None:
        deltas = {d.key: d for d in matched_deltas(points) if d.model == near.method}
        card["at_0.1bpp"] = {"quality": near.point, **{
            k: {"codec": deltas[k].model_mean, "jpeg2000": deltas[k].anchor_mean}
            for k in ("bpp", "psnr", "psnr_truth", "enl_ratio") if k in deltas}}  # fmt: skip
    return card


def _f(v: float, spec: str = ".2f") -> str:
    return "n/a" if v is None or not math.isfinite(v) else format(v, spec)


def render(card: dict[str, Any]) -> str:
    """The Markdown model card."""
    rec = card["record"]
    lines = [
        f"# {card['name']}: autoenc's default Sentinel-1 codec",
        "",
        f"- Model: `{rec['spec']['class_path']}` {json.dumps(rec['spec']['init_args'])}; "
        f"{rec['parameters']:,} parameters; weights SHA-256 `{rec['weights_sha256'][:16]}…`.",
        f"- Trained on: {rec['training']['data']} (train split), {rec['training']['recipe']}.",
        f"- Produced by: `{card['command']}`; this card by `{card['card_command']}`.",
        f"- Preprocessing: dB window {rec['preprocessing']['normalisation']['vmin_db']} … "
        f"{rec['preprocessing']['normalisation']['vmax_db']} dB; 1 latent value per pixel.",
        "",
        f"## Measured on {card['dataset']} ({card['split']} split, {card['n']} patches of "
        f"{card['scenes']} scenes, disjoint from training; speckle PSNR cap "
        f"{_f(card['psnr_cap'])} dB)",
        "",
        "| quality | bpp (real bytes) | PSNR dB | PSNR vs clean truth dB | ENL ratio |",
        "|---|---|---|---|---|",
    ]
    for q in card["qualities"]:
        lines.append(f"| {q['quality']} | {_f(q['bpp'], '.3f')} | {_f(q['psnr'])} | "
                     f"{_f(q['psnr_truth'])} | {_f(q['enl_ratio'], '.3f')} |")  # fmt: skip
    lines.append("")
    for key, label in (("bd", "patch bootstrap"), ("bd_scene", "scene-cluster bootstrap")):
        if key in card:
            r, p = card[key]["bd_rate"], card[key]["bd_psnr"]
            lines.append(
                f"- Against JPEG 2000 (Pillow/OpenJPEG, 16-bit, file bytes), {label}: BD-rate "
                f"**{r['value']:+.1f} %** [{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}], BD-PSNR "
                f"**{p['value']:+.2f} dB** [{p['ci'][0]:+.2f}, {p['ci'][1]:+.2f}] over "
                f"{p['overlap'][0]:.3f}–{p['overlap'][1]:.3f} bpp."
            )
    at = card.get("at_0.1bpp")
    if at:
        lines.append(
            f"- Near 0.1 bpp (quality {at['quality']}, JPEG 2000 at the same bytes per patch): "
            + "; ".join(
                f"{k} {_f(v['codec'], '.3f')} vs {_f(v['jpeg2000'], '.3f')}"
                for k, v in at.items()
                if isinstance(v, dict)
            )  # fmt: skip
            + "."
        )
    lines += ["", "## Limits", "", *[f"- {t}" for t in card["limits"]], ""]
    return "\n".join(lines)


LIMITS = [
    "Trained and measured on autoenc's synthetic GRD-like data (correlated speckle, ENL 4.4); "
    "on real products check the rate and PSNR yourself (`autoenc evaluate`).",
    "PSNR is on the model's dB window; values outside it are clipped (the compressor counts "
    "them). Invalid pixels are kept losslessly beside the lossy tiles.",
    "Decoding recomputes the context model in float32: decode on the kind of device that "
    "encoded (the header's checksums refuse a mismatch).",
]


def export_main(argv: list[str] | None = None) -> int:
    """Entry point of ``autoenc export``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    p = argparse.ArgumentParser(prog="autoenc export", description=__doc__.split("\n\n")[0])
    p.add_argument("ckpt", type=Path, help="checkpoint of `autoenc fit` (last.ckpt)")
    p.add_argument("--name", default="wavelet-grdh", help="file stem of the export")
    p.add_argument("--out-dir", type=Path, default=None, help="default: autoenc/pretrained")
    p.add_argument("--data", type=Path, default=Path("data/compare"), help="evaluation dataset")
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--limit", type=int, default=None, help="only the first N patches")
    p.add_argument("--report", type=Path, default=Path("reports/codec"), help="report folder")
    p.add_argument("--recipe", default="configs/codec.yaml + configs/codec_cpu.yaml")
    p.add_argument("--command", default="make codec-model", help="what produced the model")
    args = p.parse_args(argv)
    from autoenc.codec.model_io import ModelError, export_safetensors, load_codec
    from autoenc.pretrained import FOLDER

    try:
        out_dir = args.out_dir or FOLDER
        out_dir.mkdir(parents=True, exist_ok=True)
        codec = load_codec(args.ckpt)
        weights = export_safetensors(codec, out_dir / f"{args.name}.safetensors")
        card = measure(weights, args.data, args.report, args.split, args.limit)
        card.update(
            name=args.name,
            command=args.command,
            card_command=" ".join(
                ["autoenc export", *(argv if argv is not None else sys.argv[2:])]
            ),
            limits=LIMITS,
            record={
                "spec": codec.spec,
                "preprocessing": codec.preprocessing,
                "weights_sha256": codec.weights_sha256,
                "parameters": sum(t.numel() for t in codec.model.parameters()),
                "training": {"data": str(args.data), "recipe": args.recipe},
            },
        )
        for suffix, text in ((".json", json.dumps(card, indent=1, default=float)),
                             (".md", render(card))):  # fmt: skip
            dst = out_dir / f"{args.name}{suffix}"
            tmp = dst.with_name(f".{dst.name}.tmp")
            tmp.write_text(text + "\n")
            os.replace(tmp, dst)
    except (ModelError, FileNotFoundError, ValueError) as e:
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        log.error("autoenc export: %s", e)
        return 2
    log.info("exported %s (%d bytes) and its card %s", weights, weights.stat().st_size,
             out_dir / f"{args.name}.md")  # fmt: skip
    return 0


def compare_cards(card: dict[str, Any], other: dict[str, Any]) -> float:
    """BD-PSNR (dB) of ``other``'s R-D curve against ``card``'s (the reproduction check)."""
    from autoenc.metrics.bdrate import bd_quality

    def curve(c: dict[str, Any]) -> tuple[list[float], list[float]]:
        return [q["bpp"] for q in c["qualities"]], [q["psnr"] for q in c["qualities"]]

    return float(bd_quality(*curve(card), *curve(other)).value)


def check_main(argv: list[str] | None = None) -> int:
    """``python -m autoenc.pretrained.card CARD.json OTHER.json [--tol 0.2]``: exit 1 if off."""
    p = argparse.ArgumentParser(description="BD-PSNR of one model card's curve against another")
    p.add_argument("card", type=Path)
    p.add_argument("other", type=Path)
    p.add_argument("--tol", type=float, default=0.2, help="largest |BD-PSNR| in dB (0.2)")
    args = p.parse_args(argv)
    d = compare_cards(json.loads(args.card.read_text()), json.loads(args.other.read_text()))
    ok = abs(d) <= args.tol
    print(f"BD-PSNR of {args.other} against {args.card}: {d:+.3f} dB "
          f"({'within' if ok else 'OUTSIDE'} ±{args.tol} dB)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(check_main())
