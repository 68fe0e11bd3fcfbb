# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Build a patch dataset of synthetic Sentinel-1-like scenes, plus its CLI.

Lets the whole training pipeline run end to end without downloading real
SAR products; the output uses the same format as prepared real data.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.dataset_format import MANIFEST_NAME
from autoenc.data.prepare import STATE_DIR, PrepareConfig, prepare
from autoenc.data.speckle import DEFAULT_PRODUCT, PRODUCTS, product
from autoenc.data.synth import SceneContent
from autoenc.data.synth_geotiff import SYNTH_CALIBRATION_A, mirror_rows_cols, write_scenes
from autoenc.data.truth import TruthReader, attach_truth

log = logging.getLogger(__name__)

GENERATOR_NAME = "autoenc.data.synth.synth_scene"
#: The σ⁰ window used for the synthetic default (its scenes are calibrated σ⁰).
SYNTH_DB_WINDOW = (-25.0, 5.0)


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from rich.progress import Progress

    p = Progress(transient=False)
    p.start()
    p.add_task("synthesising scenes", total=total)
    return p


def _truth_store(
    folder: Path, size: int
) -> tuple[Callable[[Path, NDArray[np.float32]], None], dict[str, TruthReader]]:
    """A ``write_scenes`` truth callback saving each base truth, and the readers it fills.

    Each base truth goes to ``folder`` and is read back memory-mapped, so a dataset of many
    large scenes never holds their truths in memory at once.
    """
    readers: dict[str, TruthReader] = {}

    def keep(path: Path, base: NDArray[np.float32]) -> None:
        f = folder / f"{path.stem}.npy"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(f, base, allow_pickle=False)
        truth = np.load(f, mmap_mode="r")
        rows, cols = mirror_rows_cols(size, size, base.shape)

        def read(r: NDArray[np.int64], c: NDArray[np.int64]) -> NDArray[np.float32]:
            return np.asarray(truth[np.ix_(rows[r], cols[c])], dtype=np.float32)

        readers[path.stem] = read

    return keep, readers


def make_synthetic_dataset(
    out: Path,
    scenes: int = 24,
    size: int = 1024,
    looks: float | None = None,
    seed: int = 0,
    patch_size: int = 256,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool = False,
    overwrite: bool = False,
    product_name: str = DEFAULT_PRODUCT,
    oversampling: float | None = None,
    content: SceneContent | None = None,
) -> Path:
    """Generate ``scenes`` synthetic GeoTIFF scenes and ``autoenc prepare`` them into ``out``.

    The scenes carry the defects of real products (zero borders, NaN holes, GCP-only
    georeferencing), so the embedded default exercises the same path as real data. The window
    is the σ⁰ convention (−25, 5) dB. The speckle is the named product's (IW GRDH by default;
    ``looks`` and ``oversampling`` override it), and every shard gets its clean truth
    (:mod:`autoenc.data.truth`). Everything is built in temporary directories next to ``out``
    and renamed into place at the end, so an interrupted run never leaves a half dataset.

    Raises:
        FileExistsError: ``out`` already holds a dataset (or other files) and
            ``overwrite`` is False.
        ValueError: bad sizes or counts.
    """
    out = Path(out)
    model = product(product_name, looks, oversampling)
    content = SceneContent() if content is None else content
    if scenes < 1:
        raise ValueError(f"scenes must be >= 1, got {scenes}")
    if patch_size < 8 or size < patch_size:
        raise ValueError(f"need 8 <= patch_size <= size, got patch_size={patch_size}, size={size}")
    if out.exists() and not overwrite:
        if (out / MANIFEST_NAME).exists():
            raise FileExistsError(
                f"dataset already exists at {out} (pass overwrite=True to replace it)"
            )
        if not out.is_dir() or any(out.iterdir()):
            raise FileExistsError(f"output path {out} exists and is not an empty directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp creates 0700; the final dataset should be readable by others
    t0 = time.perf_counter()
    bar = _progress(progress, scenes)
    try:
        scene_dir = tmp / "scenes"
        keep_truth, readers = _truth_store(tmp / "truth", size)
        write_scenes(
            scene_dir,
            scenes,
            size,
            seed,
            model,
            advance=(lambda: bar.advance(bar.task_ids[0])) if bar is not None else None,
            content=content,
            truth=keep_truth,
        )
        data = tmp / "dataset"
        cfg = PrepareConfig(
            db_window=SYNTH_DB_WINDOW,
            patch_size=patch_size,
            split=tuple(split),  # type: ignore[arg-type]
            seed=seed,
            shard_size=1 << 20,
        )
        source = {
            "generator": GENERATOR_NAME,
            "args": {
                "scenes": int(scenes),
                "size": int(size),
                "looks": float(model.looks),
                "seed": int(seed),
                "patch_size": int(patch_size),
                "split": [float(r) for r in split],
            },
            "scene_seeding": "np.random.default_rng(SeedSequence([seed, scene_index]))",
            "scene_files": "GeoTIFFs written by autoenc.data.synth_geotiff, then autoenc prepare",
        }
        source["speckle"] = model.to_dict()
        source["content"] = content.to_dict()
        report = prepare([scene_dir], data, cfg, extra_source=source)
        shutil.rmtree(data / STATE_DIR)
        attach_truth(data, readers, {"generator": GENERATOR_NAME, "product": model.name})
        if out.exists():
            # Only reached with overwrite=True (or an empty dir): move the old one aside first.
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            data.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            data.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if bar is not None:
            bar.stop()
    log.info(
        "wrote synthetic dataset %s: %d scenes, %d patches in %.1f s",
        out,
        scenes,
        sum(s["num_patches"] for s in report.scenes.values()),
        time.perf_counter() - t0,
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for ``autoenc synth``."""
    p = argparse.ArgumentParser(
        prog="autoenc synth",
        description="Generate synthetic Sentinel-1-like scenes: a prepared patch dataset "
        "(default) or, with --geotiff, the GeoTIFF scenes themselves.",
    )
    p.add_argument("--out", type=Path, required=True, help="output dataset (or scene) directory")
    p.add_argument("--scenes", type=int, default=24, help="number of scenes (default 24)")
    p.add_argument("--size", type=int, default=1024, help="scene side length in px (default 1024)")
    p.add_argument(
        "--product",
        choices=sorted(PRODUCTS),
        default=DEFAULT_PRODUCT,
        help="speckle model: grdh (IW GRDH: ENL 4.4, correlated speckle from the imaging chain, "
        "the default), slc-intensity (single look, nearly white) or white (i.i.d. Gamma "
        "speckle, the earlier generator)",
    )
    p.add_argument(
        "--looks", type=float, default=None, help="replace the product's ENL (grdh: 4.4)"
    )
    p.add_argument(
        "--oversampling",
        type=float,
        default=None,
        help="replace the product's oversampling (sampling rate / bandwidth; grdh: 2)",
    )
    p.add_argument(
        "--bright-fraction",
        type=float,
        default=SceneContent.bright_fraction,
        help="share of truth pixels above +5 dB sigma0: point targets "
        f"(default {SceneContent.bright_fraction:g})",
    )
    p.add_argument(
        "--dark-fraction",
        type=float,
        default=SceneContent.dark_fraction,
        help=f"share of calm water below -25 dB sigma0 (default {SceneContent.dark_fraction:g})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--patch-size", type=int, default=256, help="patch side length (default 256)")
    p.add_argument(
        "--geotiff",
        action="store_true",
        help="write the scenes as GeoTIFFs (CRS+transform or GCPs only, zero borders, NaN holes) "
        "instead of a dataset; feed them to `autoenc prepare`",
    )
    p.add_argument(
        "--kind",
        choices=("intensity", "amplitude", "db"),
        default="intensity",
        help="with --geotiff: float32 linear sigma0 (default), uint16 GRD-like amplitude DN "
        f"(sigma0 = DN^2 / {SYNTH_CALIBRATION_A:g}^2) or float32 dB",
    )
    p.add_argument("--no-defects", action="store_true", help="with --geotiff: no borders or holes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def synth_main(argv: list[str] | None = None) -> int:
    """Entry point for ``autoenc synth``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    try:
        model = product(args.product, args.looks, args.oversampling)
        content = SceneContent(args.bright_fraction, args.dark_fraction)
        if args.geotiff:
            if args.scenes < 1 or args.size < 8:
                raise ValueError(
                    f"need --scenes >= 1 and --size >= 8, got {args.scenes}, {args.size}"
                )
            bar = _progress(not args.quiet, args.scenes)
            try:
                paths = write_scenes(
                    args.out,
                    args.scenes,
                    args.size,
                    args.seed,
                    model,
                    args.kind,
                    defects=not args.no_defects,
                    content=content,
                    advance=(lambda: bar.advance(bar.task_ids[0])) if bar is not None else None,
                )
            finally:
                if bar is not None:
                    bar.stop()
            log.info("wrote %d GeoTIFF scenes to %s", len(paths), args.out)
            return 0
        path = make_synthetic_dataset(
            args.out,
            scenes=args.scenes,
            size=args.size,
            looks=args.looks,
            seed=args.seed,
            patch_size=args.patch_size,
            progress=not args.quiet,
            overwrite=args.overwrite,
            product_name=args.product,
            oversampling=args.oversampling,
            content=content,
        )
    except (FileExistsError, ValueError) as e:
        log.error("%s", e)
        return 2
    log.info("dataset ready at %s", path)
    return 0
