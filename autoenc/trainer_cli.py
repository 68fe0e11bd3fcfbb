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
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.plugins.io import CheckpointIO
from typing_extensions import override

from autoenc.callbacks.checkpoint import RunCheckpoint
from autoenc.checkpoint_io import CheckpointError, check_training_checkpoint, read_checkpoint
from autoenc.checkpoint_plugin import AtomicCheckpointIO

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
RUN_CONFIG = "config.yaml"  # written by LightningCLI's SaveConfigCallback into the run folder
#: ``--ckpt_path`` values Lightning resolves itself; anything else must be an existing file.
SPECIAL_CKPT = ("last", "best", "hpc")

log = logging.getLogger(__name__)


class AutoencCLI(LightningCLI):
    """LightningCLI with a first-class ModelCheckpoint (fixed ``dirpath``) and run protection.

    Every Trainer it builds writes and reads checkpoints through
    :class:`~autoenc.checkpoint_plugin.AtomicCheckpointIO` (atomic writes beside the target,
    weights-only reads, also for the resume), and every ``--ckpt_path`` is checked before
    Lightning sees it: a missing, corrupt or foreign file, or ``last`` with nothing to resume,
    is a one-line :class:`~autoenc.checkpoint_io.CheckpointError`.
    """

    @override
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # A top-level checkpoint callback, so configs can give it a fixed dirpath inside the run
        # folder: without one, `--ckpt_path last` would look in a new version folder (and now
        # refuses, as it does whenever there is nothing to resume, unless --allow-fresh).
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_argument(
            "--allow-fresh",
            action="store_true",
            help="fit only: with --ckpt_path last, start from scratch when the checkpoint folder "
            "holds no last.ckpt yet (without it that is an error; other commands ignore it in "
            "a config file and refuse it on the command line)",
        )

    @override
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        plugins = self.config_init[str(self.subcommand)].trainer.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        own = [p for p in plugins if isinstance(p, CheckpointIO)]
        if any(not isinstance(p, AtomicCheckpointIO) for p in own):
            raise ValueError(
                "trainer.plugins holds a CheckpointIO; autoenc installs its own "
                "(autoenc.checkpoint_plugin.AtomicCheckpointIO: atomic writes, weights-only reads)"
            )
        if not own:
            plugins.append(AtomicCheckpointIO())
        return super().instantiate_trainer(**{**kwargs, "plugins": plugins})

    @override
    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        cfg = self.config[self.subcommand]
        _cpu_precision(cfg.trainer)
        if cfg.get("weights_only") is False:
            raise ValueError(
                "--weights_only false is not supported: autoenc loads every checkpoint as "
                "weights only (autoenc.checkpoint_io.read_checkpoint), so it can run no code"
            )
        if cfg.ckpt_path == "last":
            fresh_ok = self.subcommand == "fit" and bool(cfg.get("allow_fresh"))
            cfg.ckpt_path = _resolve_last(cfg.checkpoint.dirpath, fresh_ok=fresh_ok)
        if cfg.ckpt_path is not None and cfg.ckpt_path not in SPECIAL_CKPT:
            check_ckpt_arg(str(cfg.ckpt_path), resume=self.subcommand == "fit")
        if self.subcommand != "fit":
            return
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
            from autoenc.baselines.trivial import patch_mean_psnr

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


def _resolve_last(dirpath: str | None, *, fresh_ok: bool) -> str | None:
    """The checkpoint ``--ckpt_path last`` resumes (the newest ``last*.ckpt``, as Lightning picks).

    Returns ``None`` (train from scratch) only with ``fresh_ok`` when there is none.

    Raises:
        CheckpointError: nothing to resume and not ``fresh_ok``.
    """
    folder = Path(dirpath) if dirpath else None
    pattern = re.compile(rf"^{ModelCheckpoint.CHECKPOINT_NAME_LAST}(-(\d+))?$")
    found = (
        [p for p in folder.glob("*.ckpt") if pattern.match(p.stem) and p.is_file()]
        if folder is not None and folder.is_dir()
        else []
    )
    if found:
        return str(max(found, key=lambda p: p.stat().st_mtime))
    if fresh_ok:
        log.warning("--ckpt_path last: nothing to resume in %s; training from scratch", dirpath)
        return None
    where = f"{folder} holds no last.ckpt" if folder else "no checkpoint.dirpath is configured"
    raise CheckpointError(
        f"--ckpt_path last: nothing to resume ({where}); check --checkpoint.dirpath, or pass "
        "--allow-fresh to start a new run there"
    )


#: Checkpoints :func:`check_ckpt_arg` already accepted in this process, by (path, size, mtime,
#: resume): the command line is checked before parsing and again once configs are merged,
#: and a 49 MB checkpoint need not be read twice for that.
_ACCEPTED: set[tuple[str, int, int, bool]] = set()


def check_ckpt_arg(path: str, *, resume: bool) -> None:
    """Refuse a ``--ckpt_path`` file that is missing, unreadable or no autoenc checkpoint.

    Raises:
        CheckpointError: one line naming the file.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"--ckpt_path: checkpoint file {path} does not exist")
    st = file.stat()
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns, resume)
    if key in _ACCEPTED:
        return
    check_training_checkpoint(read_checkpoint(path), path, resume=resume)
    _ACCEPTED.add(key)


def _ckpt_arg(argv: list[str]) -> str | None:
    """The value of ``--ckpt_path`` on the command line (``None`` when absent)."""
    for i, a in enumerate(argv):
        if a.startswith("--ckpt_path="):
            return a.split("=", 1)[1]
        if a == "--ckpt_path":
            return argv[i + 1] if i + 1 < len(argv) else ""
    return None


def _run_config_for(ckpt_path: str) -> Path | None:
    """Find the ``config.yaml`` of a checkpoint's run (``<run>/checkpoints/x.ckpt``)."""
    ckpt = Path(ckpt_path)
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / RUN_CONFIG).is_file():
            return folder / RUN_CONFIG
    return None


def _with_run_config(argv: list[str]) -> list[str]:
    """Let ``fit --ckpt_path FILE`` without ``--config`` recover the run's full configuration."""
    if not argv or argv[0] not in TRAINER_COMMANDS:
        return argv
    if argv[0] != "fit" and "--allow-fresh" in argv:  # (a run's config.yaml may carry it: ignored)
        raise ValueError(f"--allow-fresh is a fit option; {argv[0]} does not take it")
    ckpt = _ckpt_arg(argv)
    if ckpt == "last" and "--config" not in argv and "-c" not in argv:
        raise CheckpointError(
            "--ckpt_path last needs --config (its checkpoint.dirpath says where last.ckpt is); "
            "or pass the file: --ckpt_path <run>/checkpoints/last.ckpt"
        )
    if ckpt is not None and ckpt not in SPECIAL_CKPT and ckpt.lower() not in ("null", "none"):
        # Before LightningCLI reads the file's hyper-parameters (a traceback on a bad file).
        check_ckpt_arg(ckpt, resume=argv[0] == "fit")
    if "--config" in argv or "-c" in argv or not ckpt or not Path(ckpt).is_file():
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
