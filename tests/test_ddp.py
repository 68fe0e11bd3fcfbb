# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Two-process DDP on CPU (gloo) through the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_ddp_two_cpu_processes(tiny_root: Path, tmp_path: Path) -> None:
    autoenc = Path(sys.executable).with_name("autoenc")
    cmd = [
        str(autoenc), "fit", "--config", str(CONFIGS / "residual.yaml"),
        f"--data.root={tiny_root}", "--data.batch_size=2", "--data.num_workers=0",
        "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
        "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
        "--trainer.precision=32-true", "--trainer.enable_progress_bar=false",
        "--model.model.init_args.base_channels=4",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    last = tmp_path / "lightning_logs" / "residual" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert "val/psnr" in str(state["callbacks"])  # the checkpoint monitored the synced metric
