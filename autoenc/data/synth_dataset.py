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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.dataset_format import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    STORAGE_DTYPE,
    VALUE_ENCODING,
    split_scenes,
    write_manifest,
    write_shard,
)
from autoenc.data.sar import Normalisation, unit_to_uint16
from autoenc.data.synth import synth_scene

log = logging.getLogger(__name__)

GENERATOR_NAME = "autoenc.data.synth.synth_scene"


def tile(image: NDArray[Any], patch_size: int) -> NDArray[Any]:
    """Cut non-overlapping (stride = patch) tiles into shape (N, 1, P, P); edges are dropped."""
    h, w = image.shape
    ny, nx = h // patch_size, w // patch_size
    if ny == 0 or nx == 0:
        raise ValueError(f"image of shape {image.shape} is smaller than patch_size={patch_size}")
    a = image[: ny * patch_size, : nx * patch_size]
    a = a.reshape(ny, patch_size, nx, patch_size).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(a.reshape(ny * nx, 1, patch_size, patch_size))


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """Independent per-scene generator, so scenes don't depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return None
    from rich.progress import Progress

    p = Progress(transient=False)
    p.start()
    p.add_task("synthesising scenes", total=total)
    return p


def make_synthetic_dataset(
    out: Path,
    scenes: int = 24,
    size: int = 1024,
    looks: float = 4.4,
    seed: int = 0,
    patch_size: int = 256,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Generate ``scenes`` synthetic scenes and store them as a patch dataset.

    The dataset is built in a temporary directory next to ``out`` and renamed
    into place at the end, so an interrupted run never leaves a half dataset.

    Raises:
        FileExistsError: ``out`` already holds a dataset (or other files) and
            ``overwrite`` is False.
        ValueError: bad sizes or counts.
    """
    out = Path(out)
    if scenes < 1:
        raise ValueError(f"scenes must be >= 1, got {scenes}")
    if patch_size < 1 or size < patch_size:
        raise ValueError(f"need 1 <= patch_size <= size, got patch_size={patch_size}, size={size}")
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
    norm = Normalisation()
    t0 = time.perf_counter()
    bar = _progress(progress, scenes)
    try:
        ids = [f"synth_{seed}_{i:04d}" for i in range(scenes)]
        splits, split_desc = split_scenes(ids, split, seed)
        scene_info: dict[str, dict[str, Any]] = {}
        shards: list[dict[str, Any]] = []
        for i, sid in enumerate(ids):
            inten, _ = synth_scene(size, looks=looks, rng=scene_rng(seed, i))
            q = unit_to_uint16(norm.forward(inten))
            patches = tile(q, patch_size)
            entry = write_shard(tmp, f"shards/{sid}_000.npy", patches)
            shards.append({"file": entry.pop("file"), "scene_id": sid, **entry})
            scene_info[sid] = {
                "split": splits[sid],
                "num_patches": int(patches.shape[0]),
                "index": i,
                "shape": [int(size), int(size)],
            }
            if bar is not None:
                bar.advance(bar.task_ids[0])
            log.debug("scene %s: %d patches", sid, patches.shape[0])
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "patch_size": int(patch_size),
            "storage_dtype": STORAGE_DTYPE,
            "value_encoding": VALUE_ENCODING,
            "normalisation": norm.to_dict(),
            "source": {
                "generator": GENERATOR_NAME,
                "args": {
                    "scenes": int(scenes),
                    "size": int(size),
                    "looks": float(looks),
                    "seed": int(seed),
                    "patch_size": int(patch_size),
                    "split": [float(r) for r in split],
                },
                "scene_seeding": "np.random.default_rng(SeedSequence([seed, scene_index]))",
                "tiling": (
                    f"non-overlapping {patch_size}px tiles, stride {patch_size}, "
                    "partial edge tiles dropped"
                ),
            },
            "scenes": scene_info,
            "shards": shards,
            "split_method": split_desc,
        }
        write_manifest(tmp, manifest)
        if out.exists():
            # Only reached with overwrite=True (or an empty dir): move the old one aside first.
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.stop()
    log.info(
        "wrote synthetic dataset %s: %d scenes, %d patches in %.1f s",
        out,
        scenes,
        sum(s["num_patches"] for s in shards),
        time.perf_counter() - t0,
    )
    return out


def build_parser() -> argparse.ArgumentParser:
    """Argument parser for ``autoenc synth``."""
    p = argparse.ArgumentParser(
        prog="autoenc synth", description="Generate a synthetic Sentinel-1-like patch dataset."
    )
    p.add_argument("--out", type=Path, required=True, help="output dataset directory")
    p.add_argument("--scenes", type=int, default=24, help="number of scenes (default 24)")
    p.add_argument("--size", type=int, default=1024, help="scene side length in px (default 1024)")
    p.add_argument(
        "--looks", type=float, default=4.4, help="speckle equivalent number of looks (default 4.4)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--patch-size", type=int, default=256, help="patch side length (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def synth_main(argv: list[str] | None = None) -> int:
    """Entry point for ``autoenc synth``; returns a process exit code."""
    args = build_parser().parse_args(argv)
    try:
        path = make_synthetic_dataset(
            args.out,
            scenes=args.scenes,
            size=args.size,
            looks=args.looks,
            seed=args.seed,
            patch_size=args.patch_size,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as e:
        log.error("%s", e)
        return 2
    log.info("dataset ready at %s", path)
    return 0
