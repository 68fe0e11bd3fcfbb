# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Fault injection on training and checkpoints (issue 12, items 1, 5, 6, 10 and the smaller ones).

Each test drives the real ``autoenc`` entry point (in-process, tiny models on the tiny dataset)
or the checkpoint module directly, and fails on the code before the fix (said per test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from fit_args import tiny

from autoenc.checkpoint_io import (
    TEMP_INFIX,
    CheckpointError,
    nonfinite_tensors,
    read_checkpoint,
    remove_dead_temps,
)
from autoenc.checkpoint_plugin import AtomicCheckpointIO
from autoenc.cli import main
from autoenc.task import CompressionTask

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RESIDUAL = ["--config", str(CONFIGS / "residual.yaml")]
CKPTS = Path("lightning_logs/residual/checkpoints")  # the residual config's fixed dirpath


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def trained(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny residual run (read-only; tests copy what they change)."""
    folder = tmp_path_factory.mktemp("trained")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["fit", *RESIDUAL, *tiny(tiny_root)]) == 0
    finally:
        os.chdir(cwd)
    return folder / CKPTS / "last.ckpt"


def one_line_error(err: str, *needles: str) -> str:
    """The ``autoenc: error:`` line of ``err``; no traceback, and every needle in it."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("autoenc: error: ")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- item 1: checkpoints never go through TMPDIR --------------------------------------------------


def test_checkpoints_are_written_beside_the_target_not_in_tmpdir(
    tiny_root: Path, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: Lightning wrote every checkpoint to ``mkstemp()`` in TMPDIR and ``shutil.move``d
    it, which across filesystems truncates ``last.ckpt`` in place and copies (mkstemp calls and
    no os.replace recorded here)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == in_tmp.stat().st_dev:
        pytest.skip("/dev/shm is not another filesystem here")
    tmpdir = Path(tempfile.mkdtemp(prefix="autoenc-tmpdir-", dir=shm))
    try:
        monkeypatch.setenv("TMPDIR", str(tmpdir))
        monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
        made: list[str] = []
        real_mkstemp, real_replace = tempfile.mkstemp, os.replace

        def mkstemp(*args: Any, **kwargs: Any) -> Any:
            fd, name = real_mkstemp(*args, **kwargs)
            made.append(name)
            return fd, name

        commits: list[tuple[Path, Path]] = []

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            src, dst = Path(src), Path(dst)
            if dst.suffix == ".ckpt":
                read_checkpoint(src)  # what becomes the checkpoint is complete before the commit
                commits.append((src, dst))
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "replace", replace)
        assert main(["fit", *RESIDUAL, *tiny(tiny_root, steps=4)]) == 0
        assert [m for m in made if m.startswith(str(tmpdir))] == []
        assert list(tmpdir.iterdir()) == []
        assert len(commits) >= 2 and any(d.name == "last.ckpt" for _, d in commits), commits
        for src, dst in commits:
            assert src.parent == dst.parent and src.name.startswith(f".{dst.name}{TEMP_INFIX}")
        last = read_checkpoint(in_tmp / CKPTS / "last.ckpt")
        assert nonfinite_tensors(last["state_dict"]) == []
        assert not [p for p in (in_tmp / CKPTS).iterdir() if TEMP_INFIX in p.name]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_writer_refuses_non_finite_weights_and_keeps_the_old_file(tmp_path: Path) -> None:
    """Old code: TorchCheckpointIO wrote NaN weights as best/last without a word."""
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    with pytest.raises(CheckpointError, match="NaN/Inf"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("nan")])}}, target)
    assert torch.equal(read_checkpoint(target)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# --- temp files of killed writers -----------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_dead_writers_are_removed_at_the_next_save(tmp_path: Path) -> None:
    """Old code: a killed save left its temp (up to 67 MB in TMPDIR) forever."""
    dead = tmp_path / f".last.ckpt{TEMP_INFIX}{_dead_pid()}"
    alive = tmp_path / f".last.ckpt{TEMP_INFIX}1"  # pid 1 runs: a writer at work, kept
    other = tmp_path / ".notes.autoenc-tmp-x"  # not the writer's pattern: kept
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, tmp_path / "a.ckpt")
    assert not dead.exists() and alive.exists() and other.exists()
    assert remove_dead_temps(tmp_path) == []


def test_resume_removes_dead_temps_and_stale_best_checkpoints(
    tiny_root: Path, in_tmp: Path
) -> None:
    """Old code: a best checkpoint written after the last ``last.ckpt`` (a kill in between) stayed
    beside the resumed run's new best, so the folder held more than save_top_k=1 best files."""
    assert main(["fit", *RESIDUAL, *tiny(tiny_root)]) == 0
    folder = in_tmp / CKPTS
    stale = folder / "best-epoch009-psnr99.00.ckpt"  # unknown to last.ckpt's ModelCheckpoint
    shutil.copy(folder / "last.ckpt", stale)
    dead = folder / f".last.ckpt{TEMP_INFIX}{_dead_pid()}"
    dead.write_bytes(b"partial")
    assert main(["fit", *RESIDUAL, *tiny(tiny_root, steps=4), "--ckpt_path=last"]) == 0
    bests = sorted(p.name for p in folder.glob("best-*.ckpt"))
    assert len(bests) == 1 and stale.name not in bests, bests
    assert not dead.exists()
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == 4


# --- item 5: --ckpt_path last with nothing to resume ----------------------------------------------


def test_ckpt_path_last_with_nothing_to_resume_is_refused(
    tiny_root: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old code: trained from step 0 with only Lightning's UserWarning, exit 0."""
    args = ["fit", *RESIDUAL, *tiny(tiny_root), "--ckpt_path=last"]
    assert main(args) != 0
    one_line_error(capsys.readouterr().err, "nothing to resume", "--allow-fresh")
    assert not (in_tmp / CKPTS).exists()
    assert main([*args, "--allow-fresh"]) == 0
    assert read_checkpoint(in_tmp / CKPTS / "last.ckpt")["global_step"] == 2


def test_allow_fresh_is_refused_outside_fit(
    tiny_root: Path, trained: Path, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["validate", *RESIDUAL, *tiny(tiny_root), f"--ckpt_path={trained}", "--allow-fresh"]
    assert main(args) != 0
    one_line_error(capsys.readouterr().err, "--allow-fresh is a fit option")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fit", "--ckpt_path=last"], "--ckpt_path last needs --config"),
        (["fit", *RESIDUAL, "--ckpt_path=last", "--weights_only=false"], "weights_only false"),
    ],
    ids=["last_without_config", "weights_only_false"],
)
def test_ckpt_path_refusals(
    args: list[str], needle: str, in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old code: "the following arguments are required: fit.model.model", and a silent
    ``weights_only=False`` for the resume."""
    assert main(args) != 0
    one_line_error(capsys.readouterr().err, needle)


# --- item 10: a pickle payload never runs ---------------------------------------------------------


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _evil_copy(trained: Path, dst: Path, marker: Path) -> Path:
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)
    ckpt["payload"] = Payload(marker)  # otherwise a valid checkpoint: training would go on
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)
    return dst


@pytest.mark.parametrize("how", ["last", "file"])
def test_pickle_payload_never_runs_even_with_torch_unsafe_switch(
    how: str,
    tiny_root: Path,
    trained: Path,
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Old code: the Trainer's resume passed weights_only=None, so with
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 the payload ran and training went on (exit 0)."""
    marker = in_tmp / "PWNED"
    evil = _evil_copy(trained, in_tmp / CKPTS / "last.ckpt", marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt = "last" if how == "last" else str(evil)
    code = main(["fit", *RESIDUAL, *tiny(tiny_root, steps=4), f"--ckpt_path={ckpt}"])
    assert not marker.exists(), "the checkpoint's pickle payload ran"
    assert code != 0
    one_line_error(capsys.readouterr().err, "refusing checkpoint", "last.ckpt")


def test_loader_refuses_when_torch_ignores_weights_only(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torch whose unsafe switch beats an explicit weights_only=True: refuse before reading."""
    marker = tmp_path / "PWNED"
    evil = _evil_copy(trained, tmp_path / "evil.ckpt", marker)
    real_load = torch.load

    def unsafe_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = False
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", unsafe_load)
    with pytest.raises(CheckpointError, match="does not enforce weights_only"):
        read_checkpoint(evil)
    assert not marker.exists()


# --- item 6: non-finite runs end with an error and save nothing non-finite ------------------------


def _assert_no_nonfinite_checkpoint(folder: Path) -> None:
    for path in folder.glob("*.ckpt") if folder.is_dir() else []:
        assert nonfinite_tensors(read_checkpoint(path)["state_dict"]) == [], path
        assert "nan" not in path.name


DEMO_NAN = [
    "--config", str(CONFIGS / "demo.yaml"),
    "--trainer.limit_train_batches=4",
    "--trainer.max_epochs=4",
    "--trainer.check_val_every_n_epoch=1",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.accelerator=cpu",
    "--data.batch_size=4",
    "--data.num_workers=0",
    "--data.crop_size=null",
]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--model.lr=1e6"], "NaN/Inf"), (["--model.lmbda=1e39"], "non-finite")],
    ids=["lr1e6", "lmbda1e39"],
)
def test_diverged_run_fails_and_saves_no_nonfinite_checkpoint(
    flags: list[str],
    needle: str,
    tiny_root: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Old code: EarlyStopping ended both runs with exit 0; lr 1e6 saved best-epoch000-psnrnan.ckpt
    with 14 non-finite tensors, lmbda 1e39 an untrained model as best."""
    args = ["fit", *RESIDUAL, *DEMO_NAN, f"--data.root={tiny_root}", *flags]
    assert main(args) != 0
    one_line_error(capsys.readouterr().err, needle)
    _assert_no_nonfinite_checkpoint(in_tmp / "lightning_logs" / "demo" / "checkpoints")


def test_run_that_skipped_every_step_is_an_error(
    tiny_root: Path,
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Training losses all NaN, validation finite (an untrained model): old code saved it as
    best and last with exit 0 (4 skipped steps stay under max_nonfinite_steps=10)."""
    real = CompressionTask.objective

    def objective(self: CompressionTask, distortion: torch.Tensor, bpp: torch.Tensor) -> Any:
        value = real(self, distortion, bpp)
        return value * float("nan") if self.training else value

    monkeypatch.setattr(CompressionTask, "objective", objective)
    assert main(["fit", *RESIDUAL, *tiny(tiny_root, steps=4)]) != 0
    one_line_error(capsys.readouterr().err, "every training step", "non-finite")
    assert not list((in_tmp / CKPTS).glob("*.ckpt")) if (in_tmp / CKPTS).is_dir() else True


def test_nan_latents_do_not_break_the_histogram(tmp_path: Path) -> None:
    """Old code (lr 1e12): ``add_histogram`` of all-NaN latents raised "The histogram is empty,
    please file a bug report" before any non-finite check could speak."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from autoenc.callbacks import TensorBoardVisuals

    class Patches:
        images = torch.rand(2, 1, 16, 16)

        def __len__(self) -> int:
            return len(self.images)

        def image(self, i: int) -> torch.Tensor:
            return self.images[i]

    logger = TensorBoardLogger(tmp_path)
    trainer = SimpleNamespace(
        loggers=[logger],
        sanity_checking=False,
        is_global_zero=True,
        global_step=3,
        datamodule=SimpleNamespace(datasets={"val": Patches()}),
    )

    class Diverged(torch.nn.Module):
        device = torch.device("cpu")

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            nan = torch.full_like(x, float("nan"))
            return {"x_hat": nan, "y": nan[:, :, :4, :4]}

    TensorBoardVisuals(num_images=2).on_validation_epoch_end(trainer, Diverged())  # type: ignore[arg-type]
    logger.experiment.flush()


# --- missing and bad checkpoints for every trainer command ----------------------------------------


def _bad_checkpoint(kind: str, trained: Path, folder: Path) -> Path:
    path = folder / f"{kind}.ckpt"
    if kind == "truncated":
        path.write_bytes(trained.read_bytes()[: trained.stat().st_size // 3])
    elif kind == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
                         .to(torch.uint8).numpy().tobytes())  # fmt: skip
    elif kind == "plain_pickle":
        import pickle

        path.write_bytes(pickle.dumps({"hello": [1, 2, 3]}))
    elif kind == "foreign_model":
        torch.save({"state_dict": {"layer.weight": torch.zeros(3)},
                    "hyper_parameters": {"hidden": 3}}, path)  # fmt: skip
    elif kind == "weights_of_another_shape":
        ckpt = torch.load(trained, map_location="cpu", weights_only=True)
        ckpt["hyper_parameters"]["model"]["init_args"]["base_channels"] = 8
        torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("stage", "kind", "needle"),
    [
        ("fit", "missing", "does not exist"),
        ("validate", "missing", "does not exist"),
        ("test", "missing", "does not exist"),
        ("predict", "missing", "does not exist"),
        ("fit", "truncated", "cannot be loaded"),
        ("validate", "random", "cannot be loaded"),
        ("test", "plain_pickle", "cannot be loaded"),
        ("predict", "foreign_model", "not an autoenc training checkpoint"),
        ("validate", "weights_of_another_shape", "does not fit this model"),
    ],
)
def test_bad_checkpoints_are_one_line_errors(
    stage: str,
    kind: str,
    needle: str,
    tiny_root: Path,
    trained: Path,
    in_tmp: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Old code: a missing file under fit said "the following arguments are required:
    fit.model.model" (no --config) and the others printed raw tracebacks."""
    path = _bad_checkpoint(kind, trained, in_tmp)
    cfg = [] if stage == "fit" and kind == "missing" else [*RESIDUAL, *tiny(tiny_root)]
    assert main([stage, *cfg, f"--ckpt_path={path}"]) != 0
    one_line_error(capsys.readouterr().err, needle, path.name)
