# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""``autoenc evaluate`` and ``autoenc report``.

Exit codes: 0 done, 1 internal error, 2 bad input (arguments, dataset, results files),
3 a checkpoint that cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("autoenc.evaluate")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def evaluate_parser() -> argparse.ArgumentParser:
    """Argument parser of ``autoenc evaluate``."""
    from autoenc.evaluation.runner import DEFAULT_LADDER

    p = argparse.ArgumentParser(
        prog="autoenc evaluate",
        description="Run trained models and classical codecs on one split of a patch dataset "
        "and write per-patch records (results.json, samples.csv) plus gallery patches.",
    )
    p.add_argument("--data", type=Path, default=Path("data/synthetic"), help="dataset root")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="CURVE[:POINT]=CKPT",
        help="a checkpoint to evaluate; points sharing a CURVE form one R-D curve "
        "(e.g. hyperprior:l32=runs/hp32/checkpoints/last.ckpt). Repeatable.",
    )
    p.add_argument(
        "--codecs",
        nargs="*",
        default=["jpeg2000"],
        help="classical codecs (jpeg2000, jpegxl, htj2k; the last two need autoenc[codecs]). "
        "The first is also run at each model's per-patch bpp.",
    )
    p.add_argument(
        "--ladder",
        type=float,
        nargs="+",
        default=list(DEFAULT_LADDER),
        help="target bpp of the classical R-D curves",
    )
    p.add_argument("--no-matched", action="store_true", help="skip the matched-bpp rows")
    p.add_argument("--device", default="cpu", help="torch device for models and metrics")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="only the first N patches")
    p.add_argument("--gallery", type=int, default=2, help="patches kept for the gallery")
    p.add_argument("--looks", type=float, default=None, help="the data's ENL (default: estimated)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """Entry point of ``autoenc evaluate``; returns the exit code."""
    _setup_logging()
    args = evaluate_parser().parse_args(argv)
    from autoenc.codec.model_io import ModelError
    from autoenc.evaluation.runner import EvalConfig, ModelSpec, evaluate

    try:
        if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
            raise ValueError(f"need --batch-size >= 1 and --limit >= 1, got {args.batch_size}, "
                             f"{args.limit}")  # fmt: skip
        if not args.model and not args.codecs:
            raise ValueError("nothing to evaluate: give --model and/or --codecs")
        cfg = EvalConfig(
            root=args.data,
            split=args.split,
            models=[ModelSpec.parse(m) for m in args.model],
            codecs=list(args.codecs),
            ladder=args.ladder,
            matched=not args.no_matched,
            device=args.device,
            batch_size=args.batch_size,
            limit=args.limit,
            gallery=args.gallery,
            looks=args.looks,
        )
        res = evaluate(cfg, args.out, progress=not args.quiet and sys.stderr.isatty())
    except ModelError as e:
        log.error("autoenc evaluate: %s", e)
        return 3
    except (FileNotFoundError, ValueError, ImportError) as e:  # ImportError: a missing extra
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        log.error("autoenc evaluate: %s", e)
        return 2
    m = res.meta
    log.info(
        "evaluated %d patches of %s/%s in %.1f s: %d records; L̂ = %.2f looks, speckle PSNR cap "
        "%.2f dB -> %s",
        m["n"], m["dataset"], m["split"], m["seconds"], len(res.records), m["looks"],
        m["psnr_cap"], args.out,
    )  # fmt: skip
    return 0


def report_parser() -> argparse.ArgumentParser:
    """Argument parser of ``autoenc report``."""
    p = argparse.ArgumentParser(
        prog="autoenc report",
        description="Turn evaluation results into a Markdown report with R-D plots, BD-rate "
        "table (bootstrap CIs) and a visual gallery.",
    )
    p.add_argument("results", type=Path, nargs="+", help="results folders (or results.json)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report folder")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--tb-logdir", type=Path, default=None, help="also log the figures here")
    p.add_argument(
        "--cluster",
        choices=("patch", "scene"),
        default="patch",
        help="bootstrap unit: patches (default) or whole scenes (a cluster bootstrap)",
    )
    return p


def report_main(argv: list[str] | None = None) -> int:
    """Entry point of ``autoenc report``; returns the exit code."""
    _setup_logging()
    args = report_parser().parse_args(argv)
    from autoenc.evaluation.records import Results
    from autoenc.evaluation.report import merge, write_report

    try:
        if args.n_boot < 10:
            raise ValueError(f"--n-boot must be >= 10, got {args.n_boot}")
        results = merge([Results.load(p) for p in args.results])
        path = write_report(
            results,
            args.out,
            n_boot=args.n_boot,
            gallery_dirs=[p if p.is_dir() else p.parent for p in args.results],
            tb_logdir=args.tb_logdir,
            cluster=args.cluster,
        )
    except (FileNotFoundError, ValueError, KeyError) as e:
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        log.error("autoenc report: %s", e)
        return 2
    log.info("report written: %s", path)
    return 0
