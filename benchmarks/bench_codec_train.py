# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Training throughput of the default codec's recipe (``make codec-model``) on this machine.

Runs ``autoenc fit`` with ``configs/codec.yaml`` + ``configs/codec_cpu.yaml`` (model, optimiser,
data exactly as ``make codec-model``) for ``--steps`` optimizer steps with validation off and a
TensorBoard log in a temporary folder, then reads the wall-clock stamps of its ``train/loss``
points: steps/s between the first logged point after ``--warmup`` and the last (start-up, data
set-up and the first steps' allocations are not counted). ``--tb DIR`` instead (or as well)
reads a finished ``make codec-model`` run: the same throughput over its whole run, validations
included, and its learning curve (``val_ladder/bpp_q*``, ``psnr_q*`` against step and wall time).

    python benchmarks/bench_codec_train.py [--steps 300] [--tb lightning_logs/codec] [--json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import add_json_argument, machine_info, save_record

NAME = "codec-train"
BATCH = 8  # configs/codec.yaml data.batch_size


def _scalars(logdir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    ea.Reload()
    return ea


def throughput(logdir: Path, warmup: int = 0) -> dict[str, float]:
    """Steps/s and patches/s from the wall stamps of a run's ``train/loss`` points."""
    pts = [e for e in _scalars(logdir).Scalars("train/loss") if e.step >= warmup]
    if len(pts) < 2:
        raise SystemExit(f"{logdir}: fewer than 2 train/loss points after step {warmup}")
    steps = pts[-1].step - pts[0].step
    seconds = pts[-1].wall_time - pts[0].wall_time
    return {"steps": steps, "seconds": seconds, "steps_per_s": steps / seconds,
            "patches_per_s": steps * BATCH / seconds}  # fmt: skip


def learning_curve(logdir: Path) -> dict[str, Any]:
    """Per ``val_ladder`` tag: [(step, wall s since the run's first point, value)]."""
    ea = _scalars(logdir)
    start = ea.Scalars("train/loss")[0].wall_time
    tags = [t for t in ea.Tags()["scalars"] if t.startswith("val_ladder/")]
    return {t: [(e.step, round(e.wall_time - start, 1), e.value) for e in ea.Scalars(t)]
            for t in sorted(tags)}  # fmt: skip


def main() -> None:
    """Run the measurement and print the numbers."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="0: only read --tb")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--data", default="data/compare")
    p.add_argument("--tb", type=Path, default=None, help="a finished codec run's log folder")
    add_json_argument(p, NAME)
    args = p.parse_args()
    record: dict[str, Any] = {"machine": machine_info(),
                              "recipe": "configs/codec.yaml + configs/codec_cpu.yaml",
                              "batch_size": BATCH}  # fmt: skip
    if args.steps > 0:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "autoenc", "fit", "--config", "configs/codec.yaml",
                 "--config", "configs/codec_cpu.yaml", f"--trainer.max_steps={args.steps}",
                 "--trainer.limit_val_batches=0", "--trainer.log_every_n_steps=10",
                 f"--trainer.logger.init_args.save_dir={tmp}",
                 "--trainer.logger.init_args.name=bench", f"--checkpoint.dirpath={tmp}/ckpt",
                 "--trainer.enable_progress_bar=false", f"--data.root={args.data}"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            t = throughput(Path(tmp) / "bench", args.warmup)
        record["bench"] = t
        print(
            f"codec training (fresh {args.steps}-step run, after step {args.warmup}): "
            f"{t['steps_per_s']:.2f} steps/s, {t['patches_per_s']:.1f} patches/s of 128² crops"
        )
    if args.tb is not None:
        t = throughput(args.tb)
        record["run"] = {"logdir": str(args.tb), **t}
        record["learning_curve"] = learning_curve(args.tb)
        print(
            f"{args.tb}: {t['steps']} steps in {t['seconds'] / 60:.1f} min, validations "
            f"included: {t['steps_per_s']:.2f} steps/s, {t['patches_per_s']:.1f} patches/s"
        )
    save_record(args.json, NAME, record)


if __name__ == "__main__":
    main()
