# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""LightningCLI for ``autoenc fit | validate | test | predict`` (imports Lightning and torch).

Kept apart from :mod:`autoenc.cli` so that data tools such as ``autoenc prepare`` start fast
and small, without torch.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from typing_extensions import override

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
RUN_CONFIG = "config.yaml"  # written by LightningCLI's SaveConfigCallback into the run folder

log = logging.getLogger(__name__)


class AutoencCLI(LightningCLI):
    """LightningCLI with a first-class ModelCheckpoint (fixed ``dirpath``) and run protection."""

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # A top-level checkpoint callback, so configs can give it a fixed dirpath inside the run
        # folder: without one, `--ckpt_path last` looks in a new version folder and silently
        # trains from scratch.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})

    @override
    def before_instantiate_classes(self) -> None:
        if self.subcommand is not None:
            _cpu_precision(self.config[self.subcommand].trainer)
        if self.subcommand != "fit":
            return
        cfg = self.config["fit"]
        dirpath = cfg.checkpoint.dirpath
        if cfg.ckpt_path is None and dirpath and (Path(dirpath) / "last.ckpt").exists():
            raise FileExistsError(
                f"{dirpath} already holds last.ckpt from an earlier run; resume it with "
                f"--ckpt_path {Path(dirpath) / 'last.ckpt'} (or --ckpt_path last), or start a new "
                "run in another folder (--checkpoint.dirpath and "
                "--trainer.logger.init_args.name), or delete the old run"
            )

    def after_fit(self) -> None:
        """Summarise the run: final metrics against a trivial baseline, where things are."""
        trainer = self.trainer
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if not trainer.is_global_zero:
            return
        lines = ["", "autoenc: training finished"]
        metrics = trainer.callback_metrics
        if "val/psnr" in metrics:
            from autoenc.baselines import patch_mean_psnr

            psnr = float(metrics["val/psnr"])
            ssim = float(metrics.get("val/ssim", math.nan))
            base = patch_mean_psnr(self.datamodule.datasets["val"])
            lines.append(
                f"  final val PSNR {psnr:.2f} dB, SSIM {ssim:.3f}"
                f" (patch-mean predictor: {base:.2f} dB, {psnr - base:+.2f} dB)"
            )
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath:
            lines.append(f"  checkpoints: {ckpt.dirpath} (best: {ckpt.best_model_path})")
            lines.append(
                f"  resume:      autoenc fit --ckpt_path {Path(ckpt.dirpath) / 'last.ckpt'}"
            )
        if log_dir:
            lines.append(f"  TensorBoard: tensorboard --logdir {log_dir}")
        sys.stdout.write("\n".join(lines) + "\n")


#: CPU capabilities (``torch.backends.cpu.get_cpu_capability()``) with no native bf16 math.
_NO_FAST_BF16 = ("DEFAULT", "NO AVX", "AVX2")


def _cpu_precision(trainer: Any) -> None:
    """Train in fp32 instead of bf16-mixed on CPUs that only emulate bf16.

    Measured on a 2-core AVX2 machine (AMD EPYC, torch 2.13): 40 demo steps took 115 s in
    bf16-mixed and 39 s in fp32. ``AUTOENC_CPU_BF16=1`` keeps bf16 anyway.
    """
    import torch

    precision = str(trainer.precision)
    on_cpu = trainer.accelerator == "cpu" or (
        trainer.accelerator == "auto" and not torch.cuda.is_available()
    )
    capability = torch.backends.cpu.get_cpu_capability()
    if not (precision.startswith("bf16") and on_cpu and capability in _NO_FAST_BF16):
        return
    if os.environ.get("AUTOENC_CPU_BF16") == "1":
        return
    log.warning(
        "precision %s -> 32-true: this CPU (%s) has no native bf16, which makes mixed precision "
        "about 3x slower than fp32 here; set AUTOENC_CPU_BF16=1 to keep it",
        precision,
        capability,
    )
    trainer.precision = "32-true"


def _run_config_for(ckpt_path: str) -> Path | None:
    """Find the ``config.yaml`` of a checkpoint's run (``<run>/checkpoints/x.ckpt``)."""
    ckpt = Path(ckpt_path)
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / RUN_CONFIG).is_file():
            return folder / RUN_CONFIG
    return None


def _with_run_config(argv: list[str]) -> list[str]:
    """Let ``fit --ckpt_path FILE`` without ``--config`` recover the run's full configuration."""
    if not argv or argv[0] not in TRAINER_COMMANDS or "--config" in argv or "-c" in argv:
        return argv
    ckpt = next(
        (
            a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else "")
            for i, a in enumerate(argv)
            if a == "--ckpt_path" or a.startswith("--ckpt_path=")
        ),
        None,
    )
    if not ckpt or not Path(ckpt).is_file():
        return argv
    config = _run_config_for(ckpt)
    if config is None:
        raise FileNotFoundError(
            f"no --config given and no {RUN_CONFIG} found next to checkpoint {ckpt!r} "
            f"(looked in {Path(ckpt).parent.parent} and {Path(ckpt).parent}); pass --config"
        )
    return [argv[0], "--config", str(config), *argv[1:]]


def run_trainer(argv: Sequence[str], *, use_sys_argv: bool = False) -> AutoencCLI:
    """Run a LightningCLI subcommand and return the CLI object (tests call it in-process).

    With ``use_sys_argv`` the (possibly rewritten) arguments go through ``sys.argv``, which is
    what DDP's launcher re-executes in the worker processes.
    """
    from autoenc.data.datamodule import PatchDataModule
    from autoenc.task import CompressionTask

    args = _with_run_config(list(argv))
    if use_sys_argv:
        sys.argv = [sys.argv[0], *args]
    return AutoencCLI(
        CompressionTask,
        PatchDataModule,
        args=None if use_sys_argv else args,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        # Raise parse errors (ArgumentError) so main() can add what the user needs to fix them.
        parser_kwargs={
            "exit_on_error": False,
            **{s: {"exit_on_error": False} for s in TRAINER_COMMANDS},
        },
    )
