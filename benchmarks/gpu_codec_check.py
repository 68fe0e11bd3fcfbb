# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""GPU codec check: compress + decompress a 10,000² scene on CUDA, and GPU -> CPU portability.

One prepared script for a lent GPU (``make gpu-codec-check``). Steps, each timed with
``torch.cuda.synchronize`` around it and recorded in ``benchmarks/results/gpu-codec-<date>.json``
(written after every step, so a timeout keeps what was measured):

1. write a synthetic float32 σ⁰ scene of ``--size``² (default 10,000) in bounded memory;
2. ``compress_scene`` on ``cuda`` (target: compress + decompress <= 10 s on an H100);
3. ``decompress_scene`` on ``cuda``;
4. ``decompress_scene`` on the ``cpu`` of the same file: either it decodes (then the PSNR
   between the two reconstructions is recorded), or the decoder detects the device mismatch
   and refuses (``DeviceMismatchError``), which is the documented behaviour.

The checkpoint comes from ``--ckpt`` (default the hyperprior demo run). ``--allow-cpu`` runs the
same steps on the CPU with a small ``--size`` to test the script itself (numbers meaningless).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import machine_info, write_json

from autoenc.codec.model_io import load_codec
from autoenc.codec.scene import compress_scene, decompress_scene
from autoenc.data.synth_geotiff import write_scene
from autoenc.models import DeviceMismatchError
from autoenc.sar.geotiff import SceneReader

TARGET_S = 10.0


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn: Any) -> tuple[Any, float]:
    _sync()
    t0 = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - t0


def _read(path: Path) -> np.ndarray:
    with SceneReader(path) as r:
        return r.read(0, 0, r.height, r.width).astype(np.float64)


def _psnr_db(a: np.ndarray, b: np.ndarray, lo: float, hi: float) -> float:
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    da = np.clip(10 * np.log10(a[ok]), lo, hi)
    db = np.clip(10 * np.log10(b[ok]), lo, hi)
    mse = float(np.mean(((da - db) / (hi - lo)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default="lightning_logs/hyperprior_demo/checkpoints/last.ckpt")
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--work", default="/tmp/autoenc-gpu-codec")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--allow-cpu", action="store_true")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("no CUDA device (use --allow-cpu to test the script)", file=sys.stderr)
        return 2
    dev = "cuda" if cuda else "cpu"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) / f"gpu-codec-{dt.date.today().isoformat()}.json"
    rec: dict[str, Any] = {"benchmark": "gpu-codec", "machine": machine_info(), "args": vars(args)}
    if cuda:
        rec["gpu"] = torch.cuda.get_device_name(0)
    try:
        scene, rec["write_scene_s"] = _timed(
            lambda: write_scene(work / f"scene_{args.size}.tif", args.size, 0, kind="intensity")
        )
        write_json(out, rec)
        codec = load_codec(args.ckpt, dev)
        lo, hi = codec.preprocessing.normalisation.window
        aec = work / "scene.aec"
        stats, rec["compress_s"] = _timed(
            lambda: compress_scene(scene, aec, codec, tile=args.tile, batch_size=args.batch_size)
        )
        rec["bpp"] = stats.bpp
        rec["mpix"] = args.size**2 / 1e6
        write_json(out, rec)
        rec_gpu = work / "rec_gpu.tif"
        _, rec["decompress_s"] = _timed(lambda: decompress_scene(aec, rec_gpu, lambda h: codec))
        rec["end_to_end_s"] = rec["compress_s"] + rec["decompress_s"]
        rec["target_s"] = TARGET_S
        rec["psnr_db_window"] = _psnr_db(_read(scene), _read(rec_gpu), lo, hi)
        write_json(out, rec)
        cpu_codec = load_codec(args.ckpt, "cpu")
        rec_cpu = work / "rec_cpu.tif"
        try:
            _, rec["decompress_on_cpu_s"] = _timed(
                lambda: decompress_scene(aec, rec_cpu, lambda h: cpu_codec)
            )
            rec["gpu_file_on_cpu"] = "decoded"
            rec["psnr_gpu_vs_cpu_reconstruction"] = _psnr_db(_read(rec_gpu), _read(rec_cpu), lo, hi)
        except DeviceMismatchError as e:
            rec["gpu_file_on_cpu"] = f"refused: {e}"
        write_json(out, rec)
    except Exception:  # record what failed, keep what was measured
        rec["error"] = traceback.format_exc()
        write_json(out, rec)
        print(rec["error"], file=sys.stderr)
        return 1
    for k in ("compress_s", "decompress_s", "end_to_end_s", "bpp", "psnr_db_window",
              "gpu_file_on_cpu"):  # fmt: skip
        print(f"{k}: {rec.get(k)}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
