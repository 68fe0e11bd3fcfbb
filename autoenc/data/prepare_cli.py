# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``autoenc prepare``: argument parsing, rich progress bars and the summary table."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from autoenc.data.prepare import PrepareConfig, PrepareReport, prepare
from autoenc.sar.geotiff import SceneError
from autoenc.sar.radiometry import DEFAULT_NOISE_FLOOR_DB

log = logging.getLogger(__name__)

EPILOG = """\
examples:
  autoenc prepare S1A_IW_GRDH_*.SAFE/measurement --out data/s1 --calibration auto
  autoenc prepare scenes/ --out data/s1 --db-window -25,5 --split-file splits.csv
  autoenc fit --config configs/residual.yaml --data.root data/s1

exit codes: 0 ok; 1 some scenes failed (with --on-error skip); 2 bad options or input:
  among them a band --input-kind auto cannot settle, an implausible dB window, no patches for
  training (the folder then holds no manifest), an output folder another prepare is writing,
  a --calibration constant or XML file with no amplitude file among the inputs.
"""


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers 'LO,HI', got {text!r}") from None
    return lo, hi


def _triple(text: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'TRAIN,VAL,TEST', got {text!r}") from None
    return a, b, c


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for ``autoenc prepare``."""
    p = argparse.ArgumentParser(
        prog="autoenc prepare",
        description="Turn Sentinel-1 GeoTIFF scenes into a scene-split patch dataset for "
        "`autoenc fit --data.root OUT`, streaming every scene in windows.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, help="GeoTIFF files or folders (recursive)")
    p.add_argument("--out", type=Path, required=True, help="output dataset folder")
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--input-kind",
        choices=("auto", "amplitude", "intensity", "db"),
        default="auto",
        help="what the band holds; auto: integer -> amplitude DN, float -> unit metadata, else "
        "the sampled values: none or few small negatives -> linear intensity, mostly or large "
        "negatives of a dB range -> dB, anything unclear is refused (default auto; the reason "
        "is recorded)",
    )
    g.add_argument("--band", default=None, help="band index (1-based) or description, e.g. VV")
    g.add_argument(
        "--calibration",
        default="auto",
        help="amplitude DN -> sigma0: 'auto' (SAFE annotation/calibration/calibration-<name>.xml "
        "if present, else raw DN^2), 'none', a constant A (sigma0 = DN^2/A^2) or an XML file; "
        "applied to the amplitude files only (float files of a mixed input are recorded as "
        "n/a), refused when no input file is amplitude",
    )
    g.add_argument(
        "--calibration-lut",
        default="sigmaNought",
        choices=("sigmaNought", "betaNought", "gamma"),
        help="LUT of the XML to use",
    )
    g.add_argument(
        "--noise-floor-db",
        type=float,
        default=DEFAULT_NOISE_FLOOR_DB,
        help="dB values below it (after calibration) are raised to it before the window "
        f"(default {DEFAULT_NOISE_FLOOR_DB})",
    )
    n = p.add_argument_group("normalisation")
    n.add_argument(
        "--db-window",
        type=_pair,
        default=None,
        metavar="LO,HI",
        help="fixed dB window, e.g. -25,5 for sigma0 (default: percentiles)",
    )
    n.add_argument(
        "--percentiles",
        type=_pair,
        default=(0.1, 99.9),
        metavar="LO,HI",
        help="window percentiles of the training scenes' valid pixels (default 0.1,99.9)",
    )
    q = p.add_argument_group("patches and split")
    q.add_argument("--patch-size", type=int, default=256, help="patch side (default 256)")
    q.add_argument("--stride", type=int, default=None, help="patch step (default: patch size)")
    q.add_argument("--min-valid", type=float, default=0.9, help="min valid share (default 0.9)")
    q.add_argument(
        "--max-saturated",
        type=float,
        default=0.5,
        help="max share of valid pixels at the window ends (default 0.5)",
    )
    q.add_argument(
        "--min-std-db",
        type=float,
        default=0.5,
        help="min std of a patch's windowed dB values (default 0.5)",
    )
    q.add_argument(
        "--split",
        type=_triple,
        default=(0.8, 0.1, 0.1),
        metavar="TR,VA,TE",
        help="scene split ratios (default 0.8,0.1,0.1)",
    )
    q.add_argument(
        "--split-file",
        default=None,
        help="JSON {scene: split} or CSV 'scene,split' lines (overrides --split)",
    )
    q.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    q.add_argument("--shard-size", type=int, default=128, help="patches per shard (default 128)")
    r = p.add_argument_group("running")
    r.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip scenes already done with the same options (default on)",
    )
    r.add_argument(
        "--on-error",
        choices=("stop", "skip"),
        default="stop",
        help="on an unreadable scene: stop, or skip it and exit 1 at the end",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars or table")
    return p


class RichProgress:
    """Overall and per-scene bars (rows of both passes)."""

    def __init__(self, total_rows: int) -> None:
        """Start the live display on stderr."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bars = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.total = self.bars.add_task("all scenes (rows, 2 passes)", total=total_rows)
        self.current: Any = None
        self.bars.start()

    def scene(self, stage: str, name: str, rows: int) -> None:
        """Replace the per-scene bar."""
        if self.current is not None:
            self.bars.remove_task(self.current)
        self.current = self.bars.add_task(f"{stage:<8} {name}", total=rows)

    def advance(self, rows: int) -> None:
        """Advance both bars."""
        self.bars.advance(self.current, rows)
        self.bars.advance(self.total, rows)

    def stop(self) -> None:
        """End the live display."""
        self.bars.stop()


def _summary(report: PrepareReport) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"autoenc prepare -> {report.out}")
    for col in ("split", "scenes", "patches", "rejected (invalid/saturated/flat)", "valid px"):
        t.add_column(col, justify="right" if col != "split" else "left")
    for split in ("train", "val", "test"):
        sc = [s for s in report.scenes.values() if s["split"] == split]
        rej = [
            sum(s["patches"]["rejected"][r] for s in sc) for r in ("invalid", "saturated", "flat")
        ]
        px = sum(s["pixels"]["total"] for s in sc)
        valid = sum(s["pixels"]["valid"] for s in sc) / px if px else 0.0
        t.add_row(
            split,
            str(len(sc)),
            str(sum(s["num_patches"] for s in sc)),
            "/".join(map(str, rej)),
            f"{valid:.1%}",
        )
    c = Console(stderr=True)
    c.print(t)
    assert report.window is not None
    w = report.window_info
    tc = w.get("train_clip", {})
    c.print(
        f"dB window {report.window[0]:.2f} .. {report.window[1]:.2f} ({w['method']}); "
        f"train pixels clipped low {tc.get('clipped_low', 0):.3%}, "
        f"high {tc.get('clipped_high', 0):.3%}"
    )
    c.print(f"split: {report.split_method}")
    c.print(f"written {report.bytes_written / 1e6:.1f} MB; {report.skipped} scene(s) up to date")
    if report.stale_removed:
        c.print(f"removed {report.stale_removed} temp file(s) left by an interrupted run")
    for f in report.failures:
        c.print(f"[red]FAILED[/red] {f['path']} ({f['stage']}): {f['error']}")


def prepare_main(argv: list[str] | None = None) -> int:
    """Entry point for ``autoenc prepare``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    # Warnings (a scene too small for the patch, a skipped scene) reach stderr as they happen.
    logging.basicConfig(
        level=logging.WARNING, format="autoenc prepare: warning: %(message)s", stream=sys.stderr
    )
    bar = None
    try:
        cfg = PrepareConfig(
            input_kind=args.input_kind,
            band=args.band,
            calibration=args.calibration,
            calibration_lut=args.calibration_lut,
            noise_floor_db=args.noise_floor_db,
            db_window=args.db_window,
            percentiles=args.percentiles,
            patch_size=args.patch_size,
            stride=args.stride,
            min_valid=args.min_valid,
            max_saturated=args.max_saturated,
            min_std_db=args.min_std_db,
            split=args.split,
            split_file=args.split_file,
            seed=args.seed,
            shard_size=args.shard_size,
            resume=args.resume,
            on_error=args.on_error,
        )
        if not args.quiet:
            from autoenc.sar.geotiff import find_scenes, open_scene

            rows = 0
            for path in find_scenes(args.inputs):
                try:
                    with open_scene(path, args.band) as s:
                        rows += 2 * s.height
                except SceneError:
                    pass  # reported by prepare() itself
            bar = RichProgress(rows)
        report = prepare(args.inputs, args.out, cfg, progress=bar)
    except (SceneError, ValueError, FileNotFoundError, FileExistsError, OSError) as e:
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        sys.stderr.write(f"autoenc prepare: error: {e}\n")
        return 2
    finally:
        if bar is not None:
            bar.stop()
    if not args.quiet:
        _summary(report)
    log.info("dataset written to %s", report.manifest)
    if report.failures:
        sys.stderr.write(
            f"autoenc prepare: {len(report.failures)} scene(s) failed: "
            + ", ".join(f["path"] for f in report.failures)
            + "\n"
        )
        return 1
    return 0
