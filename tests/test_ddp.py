# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Two-process DDP on CPU (gloo) through the real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autoenc.cli import run_trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _autoenc(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    autoenc = Path(sys.executable).with_name("autoenc")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(autoenc), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_ddp_two_cpu_processes(
    tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = [
        "--config", str(CONFIGS / "residual.yaml"),
        f"--data.root={tiny_root}", "--data.batch_size=2", "--data.num_workers=0",
        "--trainer.accelerator=cpu", "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false", "--model.model.init_args.base_channels=4",
    ]  # fmt: skip
    ddp = ["--trainer.devices=2", "--trainer.strategy=ddp"]
    fit = _autoenc(["fit", *common, *ddp, "--trainer.max_steps=2"], tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in fit.stderr + fit.stdout
    last = tmp_path / "lightning_logs" / "residual" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2

    # The val split (4 patches) is shared 2 + 2 between the ranks; the synced metric must equal
    # the single-process value over all 4.
    val = _autoenc(["validate", *common, *ddp, f"--ckpt_path={last}"], tmp_path)
    assert val.returncode == 0, val.stderr[-3000:]
    found = re.search(r"val/psnr\s*│\s*([0-9.]+)", val.stdout)
    assert found, val.stdout[-2000:]
    monkeypatch.chdir(tmp_path)
    single = run_trainer(["validate", *common, "--trainer.devices=1", f"--ckpt_path={last}"])
    assert float(found.group(1)) == pytest.approx(
        float(single.trainer.callback_metrics["val/psnr"]), abs=1e-4
    )

    # Prediction on 2 ranks: one manifest listing every val patch exactly once.
    pred = _autoenc(
        ["predict", *common, *ddp, "--data.predict_split=val", f"--ckpt_path={last}"], tmp_path
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    manifest = json.loads(
        (tmp_path / "lightning_logs/residual/predictions/manifest.json").read_text()
    )
    indices = sorted(i for shard in manifest["shards"] for i in shard["source_index"])
    assert indices == list(range(len(single.datamodule.datasets["val"])))
