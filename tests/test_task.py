# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The task: checkpoints rebuild every variant, loss terms, fp32 SSIM, schedulers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer

from autoenc.data.datamodule import PatchDataModule
from autoenc.models import build_model, create_model, list_models, model_spec
from autoenc.task import CompressionTask, ssim_fp32, warmup_cosine


def _fit_one_step(task: CompressionTask, root: Path, tmp_path: Path) -> Trainer:
    trainer = Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(task, datamodule=PatchDataModule(root=str(root), batch_size=4, num_workers=0))
    return trainer


def _tiny(name: str) -> dict[str, Any]:
    if name == "WaveletCodec":
        return {"levels": 3, "width": 4, "steps": [0.5, 0.1]}
    return {"base_channels": 4, "latent_channels": 8}


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_rebuilds_the_variant(name: str, tiny_root: Path, tmp_path: Path) -> None:
    task = CompressionTask(model=create_model(name, **_tiny(name)))
    trainer = _fit_one_step(task, tiny_root, tmp_path)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = CompressionTask.load_from_checkpoint(path)  # no extra arguments
    assert type(loaded.model) is type(task.model)
    assert loaded.hparams["model"] == model_spec(task.model)
    x = torch.rand(2, 1, 32, 48)
    task.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = task(x), loaded(x)
    assert torch.equal(a["x_hat"], b["x_hat"])
    assert torch.equal(a["y"], b["y"])


def test_loss_is_weighted_mse_plus_one_minus_ssim() -> None:
    task = CompressionTask(
        model=create_model("PlainAutoencoder", base_channels=4), w_mse=0.3, w_ssim=0.7
    )
    x = torch.rand(2, 1, 32, 32)
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    loss, mse, ssim = task.loss(x_hat, x)
    assert torch.isclose(mse, torch.mean((x_hat - x) ** 2))
    assert torch.isclose(loss, 0.3 * mse + 0.7 * (1 - ssim))
    assert task.loss(x, x)[0].abs() < 1e-5  # perfect reconstruction costs nothing


def test_ssim_stays_fp32_under_bf16_autocast() -> None:
    x = torch.rand(2, 1, 32, 32)
    x_hat = (x + 0.05 * torch.randn_like(x)).clamp(0, 1)
    reference = ssim_fp32(x_hat, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = ssim_fp32(x_hat.bfloat16(), x.bfloat16())
    assert value.dtype == torch.float32
    assert torch.isclose(value, reference, atol=5e-3)


def test_build_model_rejects_foreign_class_paths() -> None:
    with pytest.raises(ValueError, match="torch.nn.Linear"):
        build_model({"class_path": "torch.nn.Linear", "init_args": {}})
    with pytest.raises(ValueError, match="valid variants"):
        build_model({"class_path": "Nope"})


@pytest.mark.parametrize(
    "bad", [{"w_mse": 0.0, "w_ssim": 0.0}, {"w_mse": -1.0}, {"max_nonfinite_steps": 0}]
)
def test_bad_task_arguments_are_named(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        CompressionTask(model=create_model("PlainAutoencoder", base_channels=4), **bad)  # type: ignore[arg-type]


def test_warmup_cosine_shape() -> None:
    values = [warmup_cosine(step, warmup=3, total=10) for step in range(12)]
    assert values[:3] == pytest.approx([0.25, 0.5, 0.75])  # linear warm-up
    assert values[3] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[3:], values[4:], strict=False))  # then decays
    assert values[10] == pytest.approx(0.0) and values[11] == pytest.approx(0.0)


@pytest.mark.parametrize("scheduler", ["cosine", "none", "plateau"])
def test_schedulers_run(scheduler: str, tiny_root: Path, tmp_path: Path) -> None:
    task = CompressionTask(
        model=create_model("PlainAutoencoder", base_channels=4),
        lr=1e-3,
        scheduler=scheduler,  # type: ignore[arg-type]
    )
    trainer = _fit_one_step(task, tiny_root, tmp_path)
    config = trainer.lr_scheduler_configs[0]
    assert config.name == "lr"  # LearningRateMonitor logs the key `lr`
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    if scheduler == "cosine":
        assert config.interval == "step"
        assert lr == pytest.approx(0.0)  # a 1-step run has decayed fully after its step
    else:
        assert lr == pytest.approx(1e-3)


def test_nonfinite_counts_survive_a_checkpoint() -> None:
    task = CompressionTask(model=create_model("PlainAutoencoder", base_channels=4))
    task.nonfinite_consecutive, task.nonfinite_total = 2, 5
    checkpoint: dict[str, object] = {}
    task.on_save_checkpoint(checkpoint)
    resumed = CompressionTask(model=create_model("PlainAutoencoder", base_channels=4))
    resumed.on_load_checkpoint(checkpoint)
    assert (resumed.nonfinite_consecutive, resumed.nonfinite_total) == (2, 5)


def test_parameter_groups_and_clipping_of_the_transforms_only() -> None:
    task = CompressionTask(
        model=create_model("HyperpriorAutoencoder", base_channels=4, latent_channels=8),
        lmbda=10.0,
        aux_lr=3e-3,
        scheduler="none",
    )
    task.trainer = Trainer(accelerator="cpu", max_steps=1, logger=False)  # type: ignore[misc]
    optimizer = task.configure_optimizers()["optimizer"]
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"network", "entropy", "quantiles"}
    assert groups["quantiles"]["lr"] == 3e-3 and groups["quantiles"]["weight_decay"] == 0.0
    assert groups["entropy"]["weight_decay"] == 0.0
    n_all = sum(len(g["params"]) for g in optimizer.param_groups)
    assert n_all == len(list(task.model.parameters()))  # every parameter in exactly one group
    for p in task.model.parameters():
        p.grad = torch.full_like(p, 10.0)
    task.configure_gradient_clipping(
        optimizer, gradient_clip_val=1.0, gradient_clip_algorithm="norm"
    )
    net = torch.cat([p.grad.flatten() for p in task.model.network_parameters()])
    assert float(net.norm()) == pytest.approx(1.0, rel=1e-3)  # clip_grad_norm_ adds 1e-6
    for p in [*task.model.entropy_parameters(), *task.model.aux_parameters()]:
        assert torch.all(p.grad == 10.0)  # untouched


@pytest.mark.parametrize("name", ["ResidualAutoencoder", "HyperpriorAutoencoder"])
def test_rate_is_fp32_under_bf16_autocast(name: str) -> None:
    task = CompressionTask(model=create_model(name, base_channels=4, latent_channels=8), lmbda=1.0)
    x = torch.rand(2, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = task(x)
        bpp = task.bpp(out, x)
    assert out["x_hat"].dtype == torch.bfloat16  # the transforms did run in bf16
    assert all(v.dtype == torch.float32 for v in out["likelihoods"].values())
    assert bpp.dtype == torch.float32 and torch.isfinite(bpp)


def test_channels_last_is_refused_for_narrow_strided_1x1_convs() -> None:
    """torch 2.13's CPU weight-grad kernel corrupts memory there (a crash a few steps later)."""
    from autoenc.models import create_model
    from autoenc.task import CompressionTask, channels_last_unsafe

    narrow = create_model("ResidualAutoencoder", base_channels=4)
    assert channels_last_unsafe(narrow)  # projection shortcuts 4 -> 4, stride 2
    task = CompressionTask(model=narrow, channels_last=True)
    assert task.channels_last is False
    x = torch.rand(2, 1, 32, 32)
    for _ in range(3):  # would abort the process with channels-last on the affected CPUs
        task(x)["x_hat"].mean().backward()
    wide = create_model("ResidualAutoencoder", base_channels=8)
    assert channels_last_unsafe(wide) == []
    assert CompressionTask(model=wide, channels_last=True).channels_last is True
