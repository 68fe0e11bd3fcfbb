# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Every config through the real ``autoenc`` entry point, resume, predict and failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fit_args import tiny

from autoenc.cli import main, run_trainer
from autoenc.task import CompressionTask, NonFiniteLossError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The autoencoder recipes; overlays end in "demo", and the wavelet codec's recipe (codec.yaml +
# codec_cpu.yaml) takes other model arguments: tests/test_wavelet_codec.py runs it.
EXPERIMENTS = sorted(
    p.stem
    for p in CONFIGS.glob("*.yaml")
    if not p.stem.endswith("demo") and not p.stem.startswith("codec")
)


def config_args(name: str, *overlays: str) -> list[str]:
    args = ["--config", str(CONFIGS / f"{name}.yaml")]
    for overlay in overlays:
        args += ["--config", str(CONFIGS / f"{overlay}.yaml")]
    return args


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary folder so the configs' relative run folders land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "configs",
    [(name,) for name in EXPERIMENTS] + [("residual", "demo"), ("hyperprior", "hyperprior_demo")],
    ids=[*EXPERIMENTS, "residual+demo", "hyperprior+hyperprior_demo"],
)
def test_config_fit_validate_test(configs: tuple[str, ...], tiny_root: Path, in_tmp: Path) -> None:
    cfg = config_args(*configs)
    assert main(["fit", *cfg, *tiny(tiny_root)]) == 0
    run = configs[-1] if configs[-1].endswith("demo") else configs[0]
    ckpt = in_tmp / "lightning_logs" / run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    assert (in_tmp / "lightning_logs" / run / "config.yaml").is_file()
    for stage in ("validate", "test"):
        cli = run_trainer([stage, *cfg, *tiny(tiny_root), f"--ckpt_path={ckpt}"])
        metrics = cli.trainer.callback_metrics
        prefix = "val" if stage == "validate" else "test"
        for name in ("loss", "psnr", "ssim"):
            assert torch.isfinite(metrics[f"{prefix}/{name}"]), f"{prefix}/{name}"
        assert f"{prefix}/ms_ssim" not in metrics  # 32-px patches are below MS-SSIM's minimum


def test_cli_checkpoint_loads_without_arguments(tiny_root: Path, in_tmp: Path) -> None:
    assert main(["fit", *config_args("attention"), *tiny(tiny_root)]) == 0
    ckpt = in_tmp / "lightning_logs" / "attention" / "checkpoints" / "last.ckpt"
    task = CompressionTask.load_from_checkpoint(ckpt)  # the CLI's instantiator path
    assert type(task.model).__name__ == "AttentionAutoencoder"
    assert task.model.config["base_channels"] == 4 and task.scheduler == "cosine"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert torch.equal(task.model.g_a[0].weight, state["state_dict"]["model.g_a.0.weight"])


def test_print_config_shows_predecessor_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *config_args("residual"), "--print_config"])
    assert exit_info.value.code in (0, None)
    text = capsys.readouterr().out
    for expected in (
        "batch_size: 16",
        "accumulate_grad_batches: 2",
        "precision: bf16-mixed",
        "gradient_clip_val: 1.0",
        "dirpath: lightning_logs/residual/checkpoints",
        "save_last: true",
        "class_path: autoenc.callbacks.ImageMetrics",
    ):
        assert expected in text, expected


def _record_train_start(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    starts: list[int] = []
    monkeypatch.setattr(
        CompressionTask,
        "on_train_start",
        lambda self: starts.append(self.global_step),
        raising=False,
    )
    return starts


def _optimizer_steps(ckpt: Path) -> int:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    return int(next(iter(state["optimizer_states"][0]["state"].values()))["step"])


@pytest.mark.parametrize("how", ["last", "file_with_config", "file_only"])
def test_resume_continues_the_run(
    how: str, tiny_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = config_args("residual")
    run = in_tmp / "lightning_logs" / "residual"
    assert main(["fit", *cfg, *tiny(tiny_root, steps=2)]) == 0
    last = run / "checkpoints" / "last.ckpt"
    assert _optimizer_steps(last) == 2
    starts = _record_train_start(monkeypatch)
    if how == "last":
        args = ["fit", *cfg, *tiny(tiny_root, steps=4), "--ckpt_path=last"]
    elif how == "file_with_config":
        args = ["fit", *cfg, *tiny(tiny_root, steps=4), "--ckpt_path", str(last)]
    else:  # only the checkpoint: the run's config.yaml supplies model, data, trainer, callbacks
        args = ["fit", "--ckpt_path", str(last), "--trainer.max_steps=4"]
    cli = run_trainer(args)
    assert starts == [2], "resume must continue at step 2, not start from scratch"
    assert cli.trainer.global_step == 4
    assert _optimizer_steps(last) == 4  # the optimizer state went on from the checkpoint
    assert Path(cli.trainer.log_dir or "").resolve() == run.resolve()  # same run folder
    assert sorted(p.name for p in (in_tmp / "lightning_logs").iterdir()) == ["residual"]
    if how == "file_only":
        assert cli.config.fit.data.root == str(tiny_root)
        assert cli.config.fit.model.model.init_args.base_channels == 4


def test_fresh_fit_refuses_to_overwrite_a_run(tiny_root: Path, in_tmp: Path) -> None:
    cfg = config_args("residual")
    assert main(["fit", *cfg, *tiny(tiny_root)]) == 0
    with pytest.raises(FileExistsError, match="already holds last.ckpt"):
        run_trainer(["fit", *cfg, *tiny(tiny_root)])


def test_predict_writes_one_reconstruction_per_patch(tiny_root: Path, in_tmp: Path) -> None:
    cfg = config_args("residual")
    assert main(["fit", *cfg, *tiny(tiny_root)]) == 0
    ckpt = in_tmp / "lightning_logs" / "residual" / "checkpoints" / "last.ckpt"
    run_trainer(
        ["predict", *cfg, *tiny(tiny_root), "--data.predict_split=val", f"--ckpt_path={ckpt}"]
    )
    out = in_tmp / "lightning_logs" / "residual" / "predictions"
    manifest = json.loads((out / "manifest.json").read_text())
    source = json.loads((tiny_root / "manifest.json").read_text())
    val_scenes = {s for s, v in source["scenes"].items() if v["split"] == "val"}
    expected = sum(source["scenes"][s]["num_patches"] for s in val_scenes)
    indices = [i for shard in manifest["shards"] for i in shard["source_index"]]
    assert sorted(indices) == list(range(expected))
    assert set(manifest["scenes"]) == val_scenes
    for shard in manifest["shards"]:
        rec = np.load(out / shard["file"])
        lat = np.load(out / "latents" / Path(shard["file"]).name)
        assert rec.dtype == np.uint16 and rec.shape[1:] == (1, 32, 32)
        assert lat.shape == (rec.shape[0], 16, 2, 2)


def test_nonfinite_loss_stops_the_run(
    tiny_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nan_loss(self, x_hat, x):  # type: ignore[no-untyped-def]
        nan = torch.tensor(float("nan"))
        return nan, nan, nan

    monkeypatch.setattr(CompressionTask, "loss", nan_loss)
    args = ["fit", *config_args("residual"), *tiny(tiny_root, steps=20)]
    with pytest.raises(NonFiniteLossError, match="non-finite .* for 3 consecutive steps"):
        run_trainer([*args, "--model.max_nonfinite_steps=3"])


def test_unknown_variant_lists_valid_ones(
    tiny_root: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *config_args("residual"), *tiny(tiny_root)]
    code = main([*args, "--model.model.class_path=autoenc.models.NoSuchAutoencoder"])
    err = capsys.readouterr().err
    assert code != 0
    assert "NoSuchAutoencoder" in err
    for valid in ("PlainAutoencoder", "ResNetAutoencoder", "ResidualAutoencoder"):
        assert valid in err


def test_bad_latent_channels_is_named(
    tiny_root: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *config_args("residual"), *tiny(tiny_root)]
    assert main([*args, "--model.model.init_args.latent_channels=0"]) != 0
    assert "latent_channels" in capsys.readouterr().err


def test_missing_non_default_root_is_an_error(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["fit", *config_args("residual"), *tiny(in_tmp / "nowhere")]
    assert main(args) == 1
    assert "nowhere" in capsys.readouterr().err
    assert not (in_tmp / "nowhere").exists()


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "synth"):
        assert f"  {command} " in out
    assert main(["nonsense"]) == 2


@pytest.mark.parametrize(
    ("capability", "accelerator", "env", "want"),
    [
        ("AVX2", "cpu", None, "32-true"),
        ("AVX2", "auto", None, "32-true"),
        ("AVX2", "cpu", "1", "bf16-mixed"),
        ("AVX512", "cpu", None, "bf16-mixed"),
        ("AVX2", "gpu", None, "bf16-mixed"),
    ],
)
def test_bf16_falls_back_to_fp32_on_cpus_without_native_bf16(
    monkeypatch: pytest.MonkeyPatch, capability: str, accelerator: str, env: str | None, want: str
) -> None:
    from types import SimpleNamespace

    import torch

    from autoenc.trainer_cli import _cpu_precision

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if env is None:
        monkeypatch.delenv("AUTOENC_CPU_BF16", raising=False)
    else:
        monkeypatch.setenv("AUTOENC_CPU_BF16", env)
    trainer = SimpleNamespace(precision="bf16-mixed", accelerator=accelerator)
    _cpu_precision(trainer)
    assert trainer.precision == want
    fp16 = SimpleNamespace(precision="16-mixed", accelerator="cpu")
    _cpu_precision(fp16)
    assert fp16.precision == "16-mixed"
