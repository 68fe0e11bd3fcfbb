# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Command-line overrides that shrink any `autoenc fit` recipe to seconds on the tiny dataset."""

from __future__ import annotations

from pathlib import Path


def tiny(root: Path, steps: int = 2) -> list[str]:
    """Overrides that shrink any experiment to seconds on the tiny dataset."""
    return [
        f"--data.root={root}",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.crop_size=null",
        f"--trainer.max_steps={steps}",
        "--trainer.limit_val_batches=1",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--model.model.init_args.base_channels=4",
    ]
