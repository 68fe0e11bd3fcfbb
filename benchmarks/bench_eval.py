# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Evaluation cost per patch: the metrics of ``evaluate_batch`` by family, and classical codecs.

What is measured, in patches per second on ``--device`` (default cpu):

* ``psnr``     :func:`autoenc.metrics.psnr`
* ``ssim``     :func:`autoenc.metrics.ssim`
* ``ms_ssim``  :func:`autoenc.metrics.ms_ssim`
* ``sar``      :func:`autoenc.metrics.sar_metrics` (ENL, EPI, gradient and ratio statistics)
* ``all``      :func:`autoenc.metrics.evaluate_batch`, everything the evaluation computes per
               (method, patch) pair; SSIM comes from MS-SSIM's first scale there
* ``tm_ssim``, ``tm_ms_ssim``: torchmetrics' SSIM / MS-SSIM with the same settings, what
               ``autoenc.metrics`` called before its own separable implementation; their time
               over ours is printed as the speed-up, measured in the same run.

Each is called on one batch (``--batch`` x 1 x ``--size``², default 8 x 256²) of synthetic
speckled patches (piecewise reflectivity, Gamma L = 4.4 speckle, a 40 dB window) against a
blurred, noisy "reconstruction", with a valid mask that cuts a no-data border into half the
samples, as the evaluation passes one. Every function runs ``--warmup`` times untimed, then all
are timed ``--repeats`` times in interleaved rounds and the best round is kept (the least
disturbed on a shared machine). On CUDA the timings synchronise the device. Torch runs one
intra-op thread unless ``--threads`` says otherwise: per-core numbers, and stable ones on a
shared machine, where with more threads than idle cores each of the metrics' many small
parallel regions can wait for a descheduled thread.

Codecs (CPU, one 2-D uint16 patch at a time, the same patches): ``encode`` at ``--bpp``
(rate search included; it also decodes its pick) and ``decode`` of the chosen bytes, for JPEG
2000 and, where :func:`autoenc.baselines.available_codecs` lists them, JPEG XL and HTJ2K; best of
``--repeats`` passes over ``--codec-patches`` patches.

Target: ``all`` at least 3x faster per patch than before the metric rewrite (the torchmetrics
ratios show the part SSIM and MS-SSIM had in that).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import machine_info, write_json
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

from autoenc.baselines import available_codecs, get_codec
from autoenc.metrics import evaluate_batch, ms_ssim, psnr, sar_metrics, ssim
from autoenc.sar.normalisation import Normalisation, codes_from_unit

NAME = "eval"
WINDOW_DB = (-35.0, 5.0)
LOOKS = 4.4
FAMILIES = ("psnr", "ssim", "ms_ssim", "sar", "all")
CODECS = ("jpeg2000", "jpegxl", "htj2k")


def make_batch(batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_hat, x, valid)``: speckled originals, blurred noisy reconstructions, a valid mask."""
    rng = np.random.default_rng(seed)
    levels = torch.from_numpy(rng.uniform(-20.0, -5.0, (batch, 1, 11, 11)))
    field_db = F.interpolate(levels, size=(size, size), mode="nearest")
    speckle = torch.from_numpy(rng.standard_gamma(LOOKS, (batch, 1, size, size)) / LOOKS)
    db = field_db + 10.0 * torch.log10(speckle)
    x = Normalisation(*WINDOW_DB).to_unit(db).float()  # float64 dB -> unit, then float32
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    noise = torch.from_numpy(rng.normal(0.0, 0.01, tuple(x.shape))).float()
    x_hat = (blurred + noise).clamp(0.0, 1.0)
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[::2, :, :, : size // 10] = False  # a GRD-like no-data border in every other sample
    return x_hat, x, valid


def metric_calls(
    x_hat: torch.Tensor, x: torch.Tensor, valid: torch.Tensor
) -> dict[str, Callable[[], object]]:
    """The timed calls, by name."""

    def tm_ssim() -> object:
        return structural_similarity_index_measure(
            x_hat, x, gaussian_kernel=True, kernel_size=11, sigma=1.5, data_range=1.0,
            reduction="none",
        )  # fmt: skip

    def tm_ms_ssim() -> object:
        return multiscale_structural_similarity_index_measure(
            x_hat, x, data_range=1.0, reduction="none"
        )

    return {
        "psnr": lambda: psnr(x_hat, x, valid),
        "ssim": lambda: ssim(x_hat, x),
        "ms_ssim": lambda: ms_ssim(x_hat, x),
        "sar": lambda: sar_metrics(x_hat, x, WINDOW_DB, LOOKS, valid),
        "all": lambda: evaluate_batch(x_hat, x, WINDOW_DB, LOOKS, valid),
        "tm_ssim": tm_ssim,
        "tm_ms_ssim": tm_ms_ssim,
    }


def time_metrics(
    calls: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each, ``repeats`` interleaved rounds after ``warmup`` calls each."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for fn in calls.values():
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def time_codec(name: str, images: list[np.ndarray], bpp: float, repeats: int) -> dict[str, Any]:
    """Best-of-``repeats`` encode and decode passes of one codec over ``images``."""
    codec = get_codec(name)
    codec.decode(codec.encode(images[0], bpp).data, np.uint16)  # warm-up: library load
    best_enc = best_dec = float("inf")
    encodes: list[int] = []
    rates: list[float] = []
    for _ in range(repeats):
        t_enc = t_dec = 0.0
        encodes, rates = [], []
        for img in images:
            t0 = time.perf_counter()
            res = codec.encode(img, bpp)
            t1 = time.perf_counter()
            codec.decode(res.data, np.uint16)
            t_dec += time.perf_counter() - t1
            t_enc += t1 - t0
            encodes.append(res.encodes)
            rates.append(res.bpp)
        best_enc, best_dec = min(best_enc, t_enc), min(best_dec, t_dec)
    n = len(images)
    return {
        "patches": n,
        "encode_patches_per_s": n / best_enc,
        "decode_patches_per_s": n / best_dec,
        "encode_decode_patches_per_s": n / (best_enc + best_dec),
        "encode_ms_per_patch": 1e3 * best_enc / n,
        "decode_ms_per_patch": 1e3 * best_dec / n,
        "encodes_per_patch": float(np.mean(encodes)),
        "bpp_mean": float(np.mean(rates)),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time the metric families, the torchmetrics reference and the codecs; return the record."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    load_before = os.getloadavg()[0]
    x_hat, x, valid = make_batch(args.batch, args.size, args.seed)
    calls = metric_calls(x_hat.to(device), x.to(device), valid.to(device))
    times = time_metrics(calls, device, args.warmup, args.repeats)
    metrics = {}
    for name, ts in times.items():
        best = min(ts)
        metrics[name] = {
            "ms_per_patch": 1e3 * best / args.batch,
            "ms_per_patch_median": 1e3 * float(np.median(ts)) / args.batch,
            "patches_per_s": args.batch / best,
        }
    ratios = {
        "tm_ssim_over_ssim": metrics["tm_ssim"]["ms_per_patch"] / metrics["ssim"]["ms_per_patch"],
        "tm_ms_ssim_over_ms_ssim": (
            metrics["tm_ms_ssim"]["ms_per_patch"] / metrics["ms_ssim"]["ms_per_patch"]
        ),
    }
    codecs = {}
    if args.codec_patches > 0:
        images = [codes_from_unit(p) for p in x[: args.codec_patches, 0].numpy()]
        while len(images) < args.codec_patches:  # more patches than the batch holds
            extra = make_batch(args.batch, args.size, args.seed + len(images))[1][:, 0].numpy()
            images += [codes_from_unit(p) for p in extra]
        images = images[: args.codec_patches]
        names = [c for c in CODECS if c in available_codecs()]
        codecs = {c: time_codec(c, images, args.bpp, args.repeats) for c in names}
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "benchmark": NAME,
        "machine": {**machine_info(), "device": str(device), "device_name": device_name},
        "settings": {
            "batch": args.batch,
            "size": args.size,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "window_db": list(WINDOW_DB),
            "looks": LOOKS,
            "bpp": args.bpp,
            "seed": args.seed,
            "torch_threads": torch.get_num_threads(),
        },
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "metrics": metrics,
        "ratios": ratios,
        "codecs": codecs,
    }


def report(rec: dict[str, Any]) -> None:
    """Print the tables and the ratios."""
    s, m = rec["settings"], rec["machine"]
    print(
        f"bench_eval: batch {s['batch']} x {s['size']}² on {m['device']} ({m['device_name']}), "
        f"{s['torch_threads']} torch thread(s), {m['cpu_affinity']} CPUs, torch {m['torch']}; "
        f"best of {s['repeats']} after {s['warmup']} warm-up call(s)"
    )
    print(f"{'metric':<11} {'ms/patch':>9} {'median':>9} {'patches/s':>10}")
    for name, r in rec["metrics"].items():
        print(
            f"{name:<11} {r['ms_per_patch']:>9.2f} {r['ms_per_patch_median']:>9.2f} "
            f"{r['patches_per_s']:>10.1f}"
        )
    ra = rec["ratios"]
    print(f"torchmetrics SSIM / ours:    {ra['tm_ssim_over_ssim']:6.1f}x")
    print(f"torchmetrics MS-SSIM / ours: {ra['tm_ms_ssim_over_ms_ssim']:6.1f}x")
    if rec["codecs"]:
        print()
        print(
            f"{'codec':<9} {'bpp':>5} {'encodes':>7} {'enc ms':>7} {'dec ms':>7} "
            f"{'enc+dec patches/s':>17}   (CPU, one {s['size']}² uint16 patch at a time)"
        )
        for name, c in rec["codecs"].items():
            print(
                f"{name:<9} {c['bpp_mean']:>5.3f} {c['encodes_per_patch']:>7.1f} "
                f"{c['encode_ms_per_patch']:>7.1f} {c['decode_ms_per_patch']:>7.1f} "
                f"{c['encode_decode_patches_per_s']:>17.1f}"
            )
    la = rec["load_average_1m"]
    print(
        f"1-min load average {la['before']:.2f} before, {la['after']:.2f} after "
        f"(> {m['cpu_affinity']} means other processes competed for the CPUs)"
    )


def default_out(device: str) -> Path:
    """``benchmarks/results/eval-<device>.json``."""
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", device)
    return Path(__file__).resolve().parent / "results" / f"{NAME}-{tag}.json"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    p.add_argument("--batch", type=int, default=8, help="patches per call (default 8)")
    p.add_argument("--size", type=int, default=256, help="patch side in px (default 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds, best kept (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: per-core numbers; 0: torch's default)",
    )
    p.add_argument("--bpp", type=float, default=0.5, help="codec rate (default 0.5)")
    p.add_argument(
        "--codec-patches", type=int, default=8, help="patches per codec pass (default 8; 0: skip)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic patches")
    p.add_argument(
        "--out",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH",
        help="also write the record as JSON to PATH, or to PATH/eval-<device>.json for a folder "
        "(bare --out: benchmarks/results/eval-<device>.json); default: no file",
    )
    args = p.parse_args(argv)
    if args.batch < 1 or args.size < 16 or args.repeats < 1 or args.warmup < 0:
        p.error("need --batch >= 1, --size >= 16, --repeats >= 1 and --warmup >= 0")
    rec = run(args)
    report(rec)
    if args.out is not None:
        path = default_out(args.device) if args.out == "auto" else Path(args.out)
        if path.is_dir():  # a folder: the default file name inside it
            path = path / default_out(args.device).name
        write_json(path, rec)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
