# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""A few steps of CPU training on a fixture dataset, saved as a checkpoint (tests only)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Trainer

from autoenc.data.datamodule import PatchDataModule
from autoenc.models import AutoencoderBase
from autoenc.task import CompressionTask


def fit_tiny(
    model: AutoencoderBase, root: Path, out: Path, steps: int, lmbda: float | None = 1.0
) -> Path:
    """Train ``model`` for ``steps`` steps (batch 4, lr 5e-3, MSE) on ``root``; save to ``out``.

    Seed before building ``model`` for a reproducible checkpoint.
    """
    task = CompressionTask(model=model, lmbda=lmbda, lr=5e-3, scheduler="none", w_mse=1.0,
                           w_ssim=0.0)  # fmt: skip
    trainer = Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=out.parent)  # fmt: skip
    trainer.fit(task, datamodule=PatchDataModule(root=str(root), batch_size=4, num_workers=0))
    trainer.save_checkpoint(out)
    return out
