# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""GPU check: training throughput, peak memory and metric-state placement on one CUDA device.

Trains ``ResidualAutoencoder(latent 16, base 32, blocks 2)`` through ``CompressionTask`` and a
Lightning ``Trainer`` with the ``ImageMetrics`` callback, on batches of 16 256x256 patches read by
``PatchDataModule`` (4 workers) from a synthetic dataset generated into a temp dir, in these
configurations (``--configs`` picks some):

* ``bf16-mixed``, ``bf16-mixed+cl``  bf16 autocast, without / with channels_last
* ``16-mixed``, ``16-mixed+cl``      fp16 autocast + GradScaler, without / with channels_last
* ``bf16-mixed+accum2``              bf16 with ``accumulate_grad_batches=2`` (the shipped config)

channels_last is ``CompressionTask(channels_last=True)``: the task converts the model in its
constructor and every input in ``forward``. (A ``CompressionTask`` subclass overriding
``on_after_batch_transfer`` would not work: when both the LightningModule and the DataModule
override that hook, Lightning runs only the DataModule's, with a warning, and the DataModule's
hook is where the uint16 codes from the workers are decoded to float32 on the device.) Per config
the JSON records the dtype of the batch the DataLoader yields (``torch.uint16``) and of the
tensor the model sees (``torch.float32``, after decoding), to show the decode happened.

For each: optimizer steps/s and batches/s between step ``--warmup`` and the last step (CUDA
synchronised at both ends, measured by a callback), peak ``torch.cuda.max_memory_allocated()``
(reset before each config), the final train loss, one short validation at the end
(``limit_val_batches=2``) and the devices holding ``ImageMetrics``' states (must be cuda:0).
Targets at batch 16 on an H100: >= 60 it/s and <= 1.5 GB peak (for ``+accum2`` the speed target
is judged on batches/s). Each config is wrapped in try/except, so a failure (e.g. fp16 NaNs) is
recorded and the next config runs; the JSON (``<out>/gpu-<YYYY-MM-DD>.json``) is rewritten
atomically after every config, so a timeout still leaves the finished ones.

Without CUDA it exits with code 2, unless ``--allow-cpu`` (a smoke test of the code path only,
written to ``gpu-<date>-cpu-smoke.json``), e.g.
``--allow-cpu --steps 6 --size 64 --configs bf16-mixed --out /tmp/gpu-smoke``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import logging
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import write_json
from lightning.pytorch import Callback, Trainer, seed_everything

from autoenc.callbacks.metrics import ImageMetrics
from autoenc.data.datamodule import PatchDataModule
from autoenc.data.synth_dataset import make_synthetic_dataset
from autoenc.models import ResidualAutoencoder
from autoenc.task import CompressionTask

TARGET_IT_S = 60.0
TARGET_PEAK_GB = 1.5
CONFIGS: dict[str, dict[str, Any]] = {
    "bf16-mixed": {"precision": "bf16-mixed", "channels_last": False, "accumulate": 1},
    "bf16-mixed+cl": {"precision": "bf16-mixed", "channels_last": True, "accumulate": 1},
    "16-mixed": {"precision": "16-mixed", "channels_last": False, "accumulate": 1},
    "16-mixed+cl": {"precision": "16-mixed", "channels_last": True, "accumulate": 1},
    "bf16-mixed+accum2": {"precision": "bf16-mixed", "channels_last": False, "accumulate": 2},
    # Opt-in extras (not in the default set): torch.compile pays ~1 min of compilation first.
    "bf16-mixed+cl+compile": {
        "precision": "bf16-mixed",
        "channels_last": True,
        "accumulate": 1,
        "compile": True,
    },
    "16-mixed+cl+compile": {
        "precision": "16-mixed",
        "channels_last": True,
        "accumulate": 1,
        "compile": True,
    },
}
DEFAULT_CONFIGS = [name for name, cfg in CONFIGS.items() if not cfg.get("compile")]


class ModelInput(Callback):
    """Dtype of the first training batch as the model sees it.

    ``on_train_batch_start`` gets the batch after the device transfer and
    ``on_after_batch_transfer``, i.e. exactly what ``training_step`` passes to the task.
    """

    def __init__(self) -> None:
        super().__init__()
        self.model: str | None = None

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        # After transfer and on_after_batch_transfer: what training_step passes to the model.
        if self.model is None:
            self.model = str(batch["image"].dtype)


class Throughput(Callback):
    """Wall time between the end of optimizer step ``warmup`` and the end of the last step."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup
        self.batches = 0
        self.start: tuple[float, int, int] | None = None  # (time, global_step, batches)
        self.end: tuple[float, int, int] | None = None
        self.validation_runs = 0

    def on_validation_start(self, trainer: Trainer, pl_module: Any) -> None:
        self.validation_runs += 1

    def _sync(self, pl_module: Any) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.batches += 1
        step = trainer.global_step
        if self.start is None and step >= self.warmup:
            self._sync(pl_module)
            self.start = (time.perf_counter(), step, self.batches)
        elif self.start is not None and step >= trainer.max_steps:
            self._sync(pl_module)
            self.end = (time.perf_counter(), step, self.batches)

    def rates(self) -> dict[str, float]:
        """Optimizer steps/s and batches/s of the timed window."""
        if self.start is None or self.end is None:
            raise RuntimeError("timed window never closed (too few --steps for --warmup?)")
        dt = self.end[0] - self.start[0]
        steps = self.end[1] - self.start[1]
        batches = self.end[2] - self.start[2]
        return {
            "timed_s": dt,
            "timed_steps": steps,
            "timed_batches": batches,
            "it_per_s": steps / dt,
            "batches_per_s": batches / dt,
        }


def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions and date."""
    import lightning

    env: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            device_name=torch.cuda.get_device_name(device),
            capability=".".join(map(str, torch.cuda.get_device_capability(device))),
            device_memory_GB=props.total_memory / 1e9,
            cudnn=torch.backends.cudnn.version(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        env["device_name"] = f"CPU ({platform.processor() or platform.machine()}) - smoke test only"
    return env


def scalar(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else float(value)


def run_config(
    name: str,
    cfg: dict[str, Any],
    args: argparse.Namespace,
    data: Path,
    device: torch.device,
    workdir: Path,
) -> dict[str, Any]:
    """Train one configuration; return its measurements (raises on failure)."""
    seed_everything(args.seed, workers=True, verbose=False)
    model = ResidualAutoencoder(
        latent_channels=args.latent, base_channels=args.base, blocks_per_stage=args.blocks
    )
    task = CompressionTask(
        model=model,
        scheduler="none",
        channels_last=cfg["channels_last"],
        compile=bool(cfg.get("compile", False)),
    )
    dm = PatchDataModule(root=str(data), batch_size=args.batch, num_workers=args.workers)
    metrics_cb = ImageMetrics()
    timer = Throughput(args.warmup)
    dtypes = ModelInput()
    accumulate = int(cfg["accumulate"])
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        precision=cfg["precision"],
        max_steps=args.steps,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=1.0,
        # One short validation, right after the last training batch (outside the timed window).
        check_val_every_n_epoch=None,
        val_check_interval=args.steps * accumulate,
        limit_val_batches=args.val_batches,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        benchmark=args.cudnn_benchmark or None,
        callbacks=[metrics_cb, timer, dtypes],
        default_root_dir=str(workdir),
    )
    t0 = time.perf_counter()
    trainer.fit(task, datamodule=dm)
    wall = time.perf_counter() - t0
    # One batch straight from a fresh train DataLoader (host side, before transfer and hooks).
    loader = dm.train_dataloader()
    loader_dtype = str(next(iter(loader))["image"].dtype)
    del loader
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    rates = timer.rates()
    cm = trainer.callback_metrics
    states = sorted(metrics_cb.device_of_states())
    # Did channels_last take effect? The latent (16 channels) shows the layout convs produced.
    task.to(device)  # Trainer.fit's teardown moved the module back to the CPU
    with torch.no_grad():
        x = torch.rand(2, 1, args.size, args.size, device=device)
        if cfg["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if cfg["precision"].startswith("bf16") else torch.float16
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            y = task.model.encode(x)
    speed = rates["batches_per_s"] if accumulate > 1 else rates["it_per_s"]
    result = {
        **cfg,
        # Lightning may substitute a precision (16-mixed -> bf16-mixed on CPU, with a warning).
        "effective_precision": str(trainer.precision),
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "batch": [args.batch, 1, args.size, args.size],
        **rates,
        "fit_wall_s": wall,
        "peak_mem_GB": peak,
        "peak_mem_GiB": None if peak is None else peak * 1e9 / 2**30,
        "final_train_loss": scalar(cm, "train/loss"),
        "val": {k: float(v) for k, v in cm.items() if k.startswith("val/")},
        "validation_runs": timer.validation_runs,
        "nonfinite_steps": task.nonfinite_total,
        "metric_state_devices": states,
        "latent_channels_last": bool(y.is_contiguous(memory_format=torch.channels_last)),
        "loader_batch_dtype": loader_dtype,
        "model_input_dtype": dtypes.model,
        "pass_dtypes": loader_dtype == "torch.uint16" and dtypes.model == "torch.float32",
        "speed_judged_on": "batches_per_s" if accumulate > 1 else "it_per_s",
        "pass_speed": speed >= TARGET_IT_S,
        "pass_memory": None if peak is None else peak <= TARGET_PEAK_GB,
        "pass_metric_device": bool(states) and all(s.startswith("cuda") for s in states),
    }
    del trainer, task, model, dm, metrics_cb
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def print_table(configs: dict[str, dict[str, Any]]) -> None:
    print()
    print(
        f"{'config':<22} {'it/s':>7} {'batch/s':>8} {'peak GB':>8} {'loss':>8}  "
        f"{'metric states':<14} "
        f"{'speed':<5} {'mem':<5} {'dev':<5} {'dtype':<5}"
    )
    for name, r in configs.items():
        if "error" in r:
            print(f"{name:<22} ERROR: {r['error']}")
            continue
        peak = "-" if r["peak_mem_GB"] is None else f"{r['peak_mem_GB']:.3f}"
        loss = "-" if r["final_train_loss"] is None else f"{r['final_train_loss']:.4f}"
        if r["effective_precision"] != r["precision"]:
            name = f"{name}->{r['effective_precision']}"
        print(
            f"{name:<22} {r['it_per_s']:>7.1f} {r['batches_per_s']:>8.1f} {peak:>8} {loss:>8}  "
            f"{','.join(r['metric_state_devices']):<14} {verdict(r['pass_speed']):<5} "
            f"{verdict(r['pass_memory']):<5} {verdict(r['pass_metric_device']):<5} "
            f"{verdict(r['pass_dtypes']):<5}"
        )
    print(
        f"targets: >= {TARGET_IT_S:g} it/s (batches/s for +accum2), <= {TARGET_PEAK_GB:g} GB peak, "
        "metric states on cuda, dtype: DataLoader yields uint16, model sees float32"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit code 0 if at least one config ran, 1 if none did, 2 without CUDA."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--steps", type=int, default=300, help="optimizer steps per config (default 300)"
    )
    p.add_argument(
        "--warmup", type=int, default=20, help="untimed first optimizer steps (default 20)"
    )
    p.add_argument(
        "--configs",
        default="all",
        help=f"comma-separated subset of {','.join(CONFIGS)} (default: all but +compile)",
    )
    p.add_argument("--size", type=int, default=256, help="patch side in px (default 256)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default 16)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers (default 4)")
    p.add_argument("--scenes", type=int, default=8, help="synthetic scenes (default 8)")
    p.add_argument(
        "--scene-size",
        type=int,
        default=2048,
        help="synthetic scene side in px (default 2048: 64 patches of 256² per scene)",
    )
    p.add_argument(
        "--val-batches", type=int, default=2, help="validation batches at the end (default 2)"
    )
    p.add_argument("--base", type=int, default=32, help="base_channels (default 32)")
    p.add_argument("--latent", type=int, default=16, help="latent_channels (default 16)")
    p.add_argument("--blocks", type=int, default=2, help="blocks_per_stage (default 2)")
    p.add_argument(
        "--cudnn-benchmark", action="store_true", help="set cudnn.benchmark=True (default: off)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        help="directory of gpu-<YYYY-MM-DD>.json (default benchmarks/results)",
    )
    p.add_argument(
        "--allow-cpu", action="store_true", help="run on CPU as a smoke test of the code path"
    )
    args = p.parse_args(argv)
    names = (
        DEFAULT_CONFIGS
        if args.configs == "all"
        else [c.strip() for c in args.configs.split(",") if c.strip()]
    )
    unknown = [c for c in names if c not in CONFIGS]
    if unknown or not names:
        p.error(f"unknown --configs {unknown}; choose from {', '.join(CONFIGS)}")
    if args.steps < 2:
        p.error("--steps must be at least 2")
    if args.steps <= args.warmup:
        warmup = max(1, args.steps // 3)
        print(
            f"gpu_check: --steps {args.steps} <= --warmup {args.warmup}; timing from step {warmup}"
        )
        args.warmup = warmup
    if args.size % 16:
        p.error("--size must be a multiple of 16")

    if torch.cuda.is_available():
        device = torch.device("cuda", 0)
    elif args.allow_cpu:
        device = torch.device("cpu")
        print(
            "gpu_check: no CUDA device; --allow-cpu given, running a CPU smoke test "
            "(numbers are meaningless, 16-mixed is expected to fail)"
        )
    else:
        print(
            "gpu_check: no CUDA device available (torch.cuda.is_available() is False); this check "
            "needs a GPU. Use --allow-cpu for a CPU smoke test of the code path.",
            file=sys.stderr,
        )
        return 2

    for pattern in (
        r".*does not have many workers.*",
        r".*log_every_n_steps.*",
        r".*LeafSpec.*",
        r".*suggested max number of worker.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    date = _dt.date.today().isoformat()
    out = args.out / (f"gpu-{date}.json" if device.type == "cuda" else f"gpu-{date}-cpu-smoke.json")
    record: dict[str, Any] = {
        "benchmark": "gpu_check",
        "status": "running",
        "environment": environment(device),
        "settings": {
            "model": {
                "class": "ResidualAutoencoder",
                "latent_channels": args.latent,
                "base_channels": args.base,
                "blocks_per_stage": args.blocks,
            },
            "batch": [args.batch, 1, args.size, args.size],
            "steps": args.steps,
            "warmup_steps": args.warmup,
            "workers": args.workers,
            "dataset": {
                "scenes": args.scenes,
                "scene_size": args.scene_size,
                "patch_size": args.size,
            },
            "scheduler": "none",
            "gradient_clip_val": 1.0,
            "cudnn_benchmark": bool(args.cudnn_benchmark),
            "targets": {"it_per_s_min": TARGET_IT_S, "peak_mem_GB_max": TARGET_PEAK_GB},
        },
        "configs": {},
    }
    print(
        f"gpu_check on {record['environment']['device_name']}: torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}, configs {', '.join(names)}; writing {out}"
    )
    write_json(out, record)
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoenc-gpu-check-") as tmp:
        data = Path(tmp) / "data"
        t0 = time.perf_counter()
        make_synthetic_dataset(
            data, scenes=args.scenes, size=args.scene_size, patch_size=args.size, seed=args.seed
        )
        record["settings"]["dataset"]["synth_s"] = time.perf_counter() - t0
        for name in names:
            print(f"--- {name}", flush=True)
            try:
                r = run_config(name, CONFIGS[name], args, data, device, Path(tmp))
                peak = r["peak_mem_GB"]
                print(
                    f"{name}: {r['it_per_s']:.1f} it/s, {r['batches_per_s']:.1f} batches/s, peak "
                    f"{'-' if peak is None else f'{peak:.3f}'} GB, "
                    f"loss {r['final_train_loss']}, metric states {r['metric_state_devices']}, "
                    f"batch dtype {r['loader_batch_dtype']} -> model input "
                    f"{r['model_input_dtype']}",
                    flush=True,
                )
            except Exception as e:  # record and go on with the next config
                r = {
                    **CONFIGS[name],
                    "error": f"{type(e).__name__}: {e}".splitlines()[0][:500],
                    "traceback": traceback.format_exc(limit=8),
                }
                print(f"{name}: FAILED {r['error']}", flush=True)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            record["configs"][name] = r
            record["elapsed_s"] = time.perf_counter() - t_all
            write_json(out, record)
    record["status"] = "complete"
    record["elapsed_s"] = time.perf_counter() - t_all
    write_json(out, record)
    print_table(record["configs"])
    print(f"total {record['elapsed_s']:.0f} s; wrote {out}")
    ok = any("error" not in r for r in record["configs"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
