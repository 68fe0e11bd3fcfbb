# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Per-step training overhead of Lightning ``Trainer.fit`` + ``CompressionTask`` vs. a plain loop.

Both sides train the same ``ResidualAutoencoder`` (same seed, so the same initial weights) on the
same pre-built in-memory batches (synthetic patches decoded to float32 [0, 1] with
``PatchDataset.image``, served by one ``DataLoader`` with ``batch_size=None`` and no workers),
with the same precision, AdamW (lr 1e-4, weight decay 1e-5), loss (``CompressionTask.loss``:
w_mse·MSE + w_ssim·(1 − SSIM), fp32) and gradient clipping (norm 1.0). The plain loop is
``autocast(forward + loss) -> backward -> clip_grad_norm_ -> step -> zero_grad``. The Lightning
side is ``CompressionTask(scheduler="none")`` under a ``Trainer`` with logging, checkpointing,
progress bar, model summary and validation off; its ``training_step``
still calls ``self.log`` and checks the loss for NaN/Inf, and that cost is counted: it is the
honest price of the task.

A step is timed from one training-batch start to the next (batch fetch, hooks, forward, loss,
backward, clipping, optimizer step, scheduler step), skipping the first ``--warmup`` steps (oneDNN
primitive creation). Runs are interleaved (plain, Lightning, plain, Lightning, ...) and the median
over all timed steps of each side is compared, which damps bursts of load on a shared machine.

Why: Lightning is only worth its convenience if it adds little per step. Target: Lightning/plain
<= 1.10x.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import add_json_argument, machine_info, save_record
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from autoenc.data.dataset_format import read_manifest
from autoenc.data.patches import PatchDataset
from autoenc.data.synth_dataset import make_synthetic_dataset
from autoenc.models import ResidualAutoencoder
from autoenc.task import CompressionTask

NAME = "overhead"
TARGET_MAX_RATIO = 1.10
LR = 1e-4
WEIGHT_DECAY = 1e-5  # CompressionTask's default, used by both sides
CLIP = 1.0


def make_batches(size: int, batch: int, count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``count`` batches of synthetic patches (B, 1, size, size), cycling over the patches."""
    with tempfile.TemporaryDirectory(prefix="autoenc-bench-overhead-") as tmp:
        root = Path(tmp) / "data"
        scene = max(8 * size, 256)
        make_synthetic_dataset(root, scenes=2, size=scene, patch_size=size, seed=seed)
        ds = PatchDataset(root, read_manifest(root)["shards"])
        # Decoded float32 [0, 1] patches (items are uint16 codes): both sides train on floats.
        images = torch.stack([ds.image(i) for i in range(len(ds))])  # (N, 1, size, size)
    idx = torch.arange(count * batch) % len(images)
    return [{"image": images[idx[i * batch : (i + 1) * batch]].clone()} for i in range(count)]


def new_model(args: argparse.Namespace) -> ResidualAutoencoder:
    """Model with the same initial weights on every run."""
    torch.manual_seed(args.seed)
    return ResidualAutoencoder(
        latent_channels=args.latent, base_channels=args.base, blocks_per_stage=args.blocks
    )


def loader(batches: list[dict[str, torch.Tensor]]) -> DataLoader[Any]:
    """The same loader type for both sides: pre-built batches, no collation, no workers."""
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=0)  # type: ignore[arg-type]


def step_times(starts: list[float], end: float) -> list[float]:
    """Durations of the timed steps from their start times and the end of the last one."""
    marks = [*starts, end]
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def run_plain(args: argparse.Namespace, batches: list[dict[str, torch.Tensor]]) -> list[float]:
    """Plain PyTorch loop; returns per-step seconds of the timed steps."""
    model = new_model(args)
    task = CompressionTask(model=model, scheduler="none")  # only for .loss (same weights w_*)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    bf16 = args.precision == "bf16-mixed"
    starts: list[float] = []
    end = 0.0
    last = len(batches) - 1
    for i, batch in enumerate(loader(batches)):
        if i >= args.warmup:
            starts.append(time.perf_counter())
        x = batch["image"]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss, _, _ = task.loss(out["x_hat"], x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad()
        if i == last:
            end = time.perf_counter()
    return step_times(starts, end)


class StepTimer(Callback):
    """Records the start of every training batch after the warm-up, and the end of the last."""

    def __init__(self, warmup: int, last: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.last = last
        self.starts: list[float] = []
        self.end = 0.0

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx >= self.warmup:
            self.starts.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.last:
            self.end = time.perf_counter()


def run_lightning(args: argparse.Namespace, batches: list[dict[str, torch.Tensor]]) -> list[float]:
    """``Trainer.fit`` of ``CompressionTask``; returns per-step seconds of the timed steps."""
    task = CompressionTask(
        model=new_model(args), lr=LR, weight_decay=WEIGHT_DECAY, scheduler="none"
    )
    timer = StepTimer(args.warmup, len(batches) - 1)
    with tempfile.TemporaryDirectory(prefix="autoenc-bench-overhead-") as tmp:
        trainer = Trainer(
            accelerator="cpu",
            devices=1,
            precision=args.precision,
            max_steps=len(batches),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            gradient_clip_val=CLIP,
            callbacks=[timer],
            default_root_dir=tmp,
        )
        trainer.fit(task, train_dataloaders=loader(batches))
    if len(timer.starts) != args.steps:
        raise RuntimeError(f"Lightning ran {len(timer.starts)} timed steps, expected {args.steps}")
    return step_times(timer.starts, timer.end)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Interleave the two sides for ``--rounds`` rounds; return the record."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    batches = make_batches(args.size, args.batch, args.warmup + args.steps, args.seed)
    per_round: dict[str, list[dict[str, float]]] = {"plain": [], "lightning": []}
    all_steps: dict[str, list[float]] = {"plain": [], "lightning": []}
    wall0 = time.perf_counter()
    for _ in range(args.rounds):
        for name, fn in (("plain", run_plain), ("lightning", run_lightning)):
            t0 = time.perf_counter()
            steps = fn(args, batches)
            wall = time.perf_counter() - t0
            all_steps[name].extend(steps)
            per_round[name].append(
                {
                    "median_ms": statistics.median(steps) * 1e3,
                    "mean_ms": statistics.fmean(steps) * 1e3,
                    "run_wall_s": wall,
                }
            )
    summary: dict[str, dict[str, Any]] = {
        name: {
            "median_ms": statistics.median(s) * 1e3,
            "mean_ms": statistics.fmean(s) * 1e3,
            "min_ms": min(s) * 1e3,
            "timed_steps": len(s),
            "rounds": per_round[name],
        }
        for name, s in all_steps.items()
    }
    ratio = summary["lightning"]["median_ms"] / summary["plain"]["median_ms"]
    ratio_mean = summary["lightning"]["mean_ms"] / summary["plain"]["mean_ms"]
    ratio_min = summary["lightning"]["min_ms"] / summary["plain"]["min_ms"]
    return {
        "benchmark": NAME,
        "machine": machine_info(),
        "settings": {
            "model": {
                "class": "ResidualAutoencoder",
                "latent_channels": args.latent,
                "base_channels": args.base,
                "blocks_per_stage": args.blocks,
            },
            "batch": [args.batch, 1, args.size, args.size],
            "precision": args.precision,
            "optimizer": f"AdamW lr={LR} weight_decay={WEIGHT_DECAY}",
            "gradient_clip_norm": CLIP,
            "warmup_steps": args.warmup,
            "timed_steps_per_run": args.steps,
            "rounds": args.rounds,
            "order": "plain, lightning interleaved",
        },
        "total_wall_s": time.perf_counter() - wall0,
        "results": summary,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "ratio": {
            "lightning_over_plain_median": ratio,
            "lightning_over_plain_mean": ratio_mean,
            "lightning_over_plain_min": ratio_min,
            "target_max": TARGET_MAX_RATIO,
            "pass": ratio <= TARGET_MAX_RATIO,
        },
    }


def report(rec: dict[str, Any]) -> None:
    """Print the table and the ratio line."""
    s = rec["settings"]
    m = rec["machine"]
    b = "x".join(map(str, s["batch"]))
    print(
        f"bench_overhead: ResidualAutoencoder(latent {s['model']['latent_channels']}, base "
        f"{s['model']['base_channels']}, blocks {s['model']['blocks_per_stage']}), batch {b}, "
        f"{s['precision']}, {s['rounds']} interleaved rounds x {s['timed_steps_per_run']} "
        f"timed steps (+{s['warmup_steps']} warm-up); {m['cpu_affinity']} CPUs, "
        f"{m['torch_threads']} torch threads, "
        f"torch {m['torch']}, lightning {m['lightning']}"
    )
    print()
    print(
        f"{'side':<10} {'median ms/step':>15} {'mean ms/step':>13} {'min ms/step':>12}  "
        "per-round medians (ms)"
    )
    for name, r in rec["results"].items():
        rounds = ", ".join(f"{x['median_ms']:.1f}" for x in r["rounds"])
        print(
            f"{name:<10} {r['median_ms']:>15.1f} {r['mean_ms']:>13.1f} {r['min_ms']:>12.1f}  "
            f"{rounds}"
        )
    print()
    r = rec["ratio"]
    verdict = "PASS" if r["pass"] else "MISS"
    print(
        f"Lightning/plain (median per step): {r['lightning_over_plain_median']:.3f}x  "
        f"(target <= {r['target_max']:.2f}x)  {verdict}"
    )
    print(f"Lightning/plain (mean per step):   {r['lightning_over_plain_mean']:.3f}x  (info)")
    print(
        f"Lightning/plain (fastest step):    {r['lightning_over_plain_min']:.3f}x  "
        "(info: least disturbed)"
    )
    la = rec["load_average_1m"]
    print(
        f"total wall time: {rec['total_wall_s']:.1f} s; 1-min load average "
        f"{la['before']:.2f} before, {la['after']:.2f} after "
        f"(> {m['cpu_affinity']} means other processes competed for the CPUs)"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--size", type=int, default=64, help="patch side in px, multiple of 16 (default 64)"
    )
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument(
        "--precision",
        choices=("bf16-mixed", "32-true"),
        default="bf16-mixed",
        help="both sides (default bf16-mixed)",
    )
    p.add_argument("--base", type=int, default=16, help="base_channels (default 16)")
    p.add_argument("--latent", type=int, default=16, help="latent_channels (default 16)")
    p.add_argument("--blocks", type=int, default=2, help="blocks_per_stage (default 2)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per run (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed first steps per run (default 5)")
    p.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds of plain+Lightning (default 2)"
    )
    p.add_argument(
        "--threads", type=int, default=0, help="torch threads; 0 = torch's default (default 0)"
    )
    p.add_argument("--seed", type=int, default=0, help="data and weight seed (default 0)")
    add_json_argument(p, NAME)
    args = p.parse_args(argv)
    if args.size % 16 or args.size <= 0:
        p.error("--size must be a positive multiple of 16")
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        p.error("--steps and --rounds must be >= 1, --warmup >= 0")
    # Keep the table readable: Lightning's advice about workers/logging intervals is expected here.
    warnings.filterwarnings("ignore", module=r"lightning\..*")
    warnings.filterwarnings(
        "ignore", message=r".*(num_workers|log_every_n_steps|does not have many workers).*"
    )
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("lightning.fabric").setLevel(logging.ERROR)
    rec = run(args)
    report(rec)
    save_record(args.json, NAME, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
