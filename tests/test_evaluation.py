# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""End to end: `autoenc evaluate` and `autoenc report` on tiny seeded runs.

Two tiny models are trained for a few steps on the tiny dataset (32-px patches), evaluated with
JPEG 2000 on the test split, and reported. The checks are on behaviour: the records are real
(bytes decode, rates differ per patch, matched JPEG 2000 lands on the model's bpp), the report's
tables parse and state n, the plots are non-empty PNGs, the README block renders from bd.json.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from train_tiny import fit_tiny

from autoenc.cli import main
from autoenc.data.dataset_format import file_sha256, read_manifest, write_manifest, write_npy
from autoenc.data.patches import PatchDataset, decode
from autoenc.evaluation.compare import (
    README_BEGIN,
    README_END,
    Plan,
    readme_block,
    update_readme,
)
from autoenc.evaluation.records import Results
from autoenc.evaluation.runner import ModelSpec
from autoenc.metrics import psnr, truth_metrics
from autoenc.models import create_model

# 32-px patches: the JPEG 2000 header alone costs ~0.8 bpp, so the ladder sits higher.
LADDER = ["1.5", "2", "3", "4", "6"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: 1 torch thread


def _fit(name: str, kw: dict[str, Any], root: Path, out: Path, lmbda: float | None) -> Path:
    torch.manual_seed(0)
    return fit_tiny(create_model(name, **kw), root, out, 15, lmbda)


@pytest.fixture(scope="module")
def ckpts(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("eval_ckpts")
    hyper = {"latent_channels": 8, "base_channels": 4, "blocks_per_stage": 1, "hyper_channels": 4}
    # lambda 10 vs 1e5: 15 steps move a tiny model little and files come in 4-byte words; 10 vs
    # 1000 tied to the byte on these patches with a fresh install of the pinned wheels
    return {
        "plain": _fit("PlainAutoencoder", {"latent_channels": 8, "base_channels": 4}, tiny_root,
                      d / "plain.ckpt", None),
        "hyper:l10": _fit("HyperpriorAutoencoder", hyper, tiny_root, d / "h10.ckpt", 10.0),
        "hyper:l1e5": _fit("HyperpriorAutoencoder", hyper, tiny_root, d / "h1e5.ckpt", 1e5),
    }  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(
    tiny_root: Path, ckpts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("eval") / "results"
    argv = ["evaluate", "--data", str(tiny_root), "--split", "test", "--out", str(out),
            "--ladder", *LADDER, "--gallery", "1", "--quiet", "--looks", "4.4"]  # fmt: skip
    for name, path in ckpts.items():
        argv += ["--model", f"{name}={path}"]
    assert main(argv) == 0
    return out


def test_records_are_real(evaluated: Path, tiny_root: Path) -> None:
    res = Results.load(evaluated)
    n = res.meta["n"]
    assert n == 4 and res.meta["split"] == "test"  # 1 test scene x 4 patches
    assert res.meta["psnr_cap"] == pytest.approx(22.7, abs=0.05)  # L = 4.4 given
    methods = res.methods()
    assert {"plain", "hyper:l10", "hyper:l1e5"} <= set(methods)
    assert "jpeg2000@plain" in methods and "jpeg2000:2bpp" in methods
    for m in methods:
        recs = res.select(method=m)
        assert sorted(r["index"] for r in recs) == list(range(n))
        for r in recs:
            assert r["bpp"] > 0 and math.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1
            assert math.isnan(r["ms_ssim"])  # 32 px < 176 px
    # the rate-distortion trade-off is real: more lambda, more bits
    bpp = {m: np.mean([r["bpp"] for r in res.select(method=m)]) for m in methods}
    assert bpp["hyper:l1e5"] > bpp["hyper:l10"]
    # matched JPEG 2000 lands on the model's per-patch rate where it can (header floor aside)
    for rm, rj in zip(res.select(method="hyper:l1e5"), res.select(method="jpeg2000@hyper:l1e5"),
                      strict=True):  # fmt: skip
        assert rj["target_bpp"] == pytest.approx(rm["bpp"])
        if rj["hit"]:
            assert abs(rj["bpp"] / rm["bpp"] - 1) <= 0.03
    # CSV holds the same records
    with open(evaluated / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res.records)
    assert (evaluated / "gallery.npz").stat().st_size > 0


def test_report_end_to_end(evaluated: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    tb = tmp_path / "tb"
    assert main(["report", str(evaluated), "--out", str(out), "--n-boot", "200",
                 "--tb-logdir", str(tb)]) == 0  # fmt: skip
    text = (out / "report.md").read_text()
    assert "n = 4 patches" in text
    # every Markdown table parses: same number of cells on every row
    tables = re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M)
    assert len(tables) >= 5
    for t in tables:
        widths = {line.count("|") for line in t.strip().splitlines()}
        assert len(widths) == 1, t
    for png in ("rd.png", "gallery.png"):
        img = np.asarray(Image.open(out / png).convert("L"))
        assert img.shape[0] > 200 and img.std() > 5  # non-empty drawing
    bd = json.loads((out / "bd.json").read_text())
    curves = {r["curve"] for r in bd["psnr"]}
    assert curves == {"plain", "hyper"}
    hyper = next(r for r in bd["psnr"] if r["curve"] == "hyper")
    assert hyper["points"] == 2 and hyper["bd_rate"]["point"]["method"] == "pchip"
    plain = next(r for r in bd["psnr"] if r["curve"] == "plain")
    assert plain["bd_rate"]["point"]["method"] == "single-point"
    with open(out / "points.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["metric"] for r in rows} >= {"bpp", "psnr", "ssim", "enl_ratio", "epi", "bias_db"}
    assert any(p.name.startswith("events.out.tfevents") for p in tb.iterdir())


def test_readme_block_renders_from_report(evaluated: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert main(["report", str(evaluated), "--out", str(out), "--n-boot", "50"]) == 0
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{README_BEGIN}\nold\n{README_END}\n\noutro\n")
    update_readme(readme, readme_block(out, readme, "autoenc compare plan.yaml"))
    text = readme.read_text()
    assert text.startswith("intro") and text.endswith("outro\n") and "old" not in text
    assert "report/rd.png" in text and "| plain |" in text
    no_markers = tmp_path / "other.md"
    no_markers.write_text("nothing here\n")
    with pytest.raises(ValueError, match="compare:begin"):
        update_readme(no_markers, "x")


def test_missing_extra_is_a_clear_error(
    tiny_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if autoenc[codecs] were absent
    argv = ["evaluate", "--data", str(tiny_root), "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*argv, "--codecs", "jpegxl"]) == 2
    assert "autoenc[codecs]" in caplog.text


def test_bad_inputs(tiny_root: Path, ckpts: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    base = ["evaluate", "--data", str(tiny_root), "--out", str(out), "--quiet"]
    assert main([*base, "--codecs", "nosuchcodec"]) == 2
    assert main([*base, "--model", f"x={tmp_path / 'missing.ckpt'}"]) == 3
    assert main([*base, "--ladder", "0", "--codecs", "jpeg2000"]) == 2
    plain = ckpts["plain"]
    assert main([*base, "--model", f"a={plain}", "--model", f"a={plain}"]) == 2  # same name
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(out)]) == 2
    assert not (out / "results.json").exists()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["report", str(bad), "--out", str(out)]) == 2
    with pytest.raises(ValueError, match="CURVE"):
        ModelSpec.parse("=x.ckpt")


def test_plan_is_checked(tmp_path: Path) -> None:
    plan = Plan.load(Path("configs/compare/cpu.yaml"))
    assert [r.name for r in plan.runs][:4] == ["plain", "resnet", "residual", "attention"]
    assert sum(r.name.startswith("hyperprior:") for r in plan.runs) == 3
    gpu = Plan.load(Path("configs/compare/gpu.yaml"))
    assert len(gpu.runs) == 7
    bad = tmp_path / "bad.yaml"
    bad.write_text("runs:\n  - name: a\n    config: configs/nope.yaml\n")
    with pytest.raises(ValueError, match="nope.yaml"):
        Plan.load(bad)


def test_compare_report_only_rerenders(evaluated: Path, tmp_path: Path) -> None:
    """`autoenc compare PLAN --report-only` re-renders report and README block from results."""
    import shutil

    out = tmp_path / "cmp"
    shutil.copytree(evaluated, out)
    (out / "timing.json").write_text(json.dumps({"train_s": {"plain": 60.0}, "evaluate_s": 30.0,
                                                 "total_s": 95.0}))  # fmt: skip
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"out: {out}\nruns:\n  - name: plain\n    config: configs/plain.yaml\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_BEGIN}\n{README_END}\n")
    assert main(["compare", str(plan), "--report-only", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "training 1.0 min (1 runs), evaluation 0.5 min" in text and "| hyper |" in text
    assert (out / "report.md").is_file() and (out / "summary.json").is_file()
    (out / "timing.json").unlink()
    assert main(["compare", str(plan), "--report-only"]) == 2  # no timing: clear error


def test_report_cluster_bootstrap_by_scene(evaluated: Path, tmp_path: Path) -> None:
    """--cluster scene redraws whole scenes; one scene cannot be resampled, which is an error."""
    out = tmp_path / "r"
    assert main(["report", str(evaluated), "--out", str(out), "--cluster", "scene"]) == 2
    doc = json.loads((evaluated / "results.json").read_text())
    for r in doc["records"]:  # pretend the 4 patches come from two scenes
        r["scene_id"] = f"s{r['index'] % 2}"
    two = tmp_path / "two"
    two.mkdir()
    (two / "results.json").write_text(json.dumps(doc))
    assert (
        main(["report", str(two), "--out", str(out), "--cluster", "scene", "--n-boot", "50"]) == 0
    )
    assert (
        "redraws the scenes (all their patches; a cluster bootstrap)"
        in (out / "report.md").read_text()
    )
    bd = json.loads((out / "bd.json").read_text())
    assert all(r["bd_rate"]["n_groups"] == 2 for r in bd["psnr"])


def test_learned_rate_counts_the_container_framing(tmp_path: Path) -> None:
    """The bytes a patch costs in an .aec file: its TILE payload plus the chunk framing."""
    from autoenc.codec.container import ContainerWriter
    from autoenc.evaluation.learned import CHUNK_FRAMING_BYTES

    sizes = []
    for chunks in (1, 2):
        path = tmp_path / f"{chunks}.aec"
        with ContainerWriter(path, {"kind": "test"}) as out:
            for _ in range(chunks):
                out.add_chunk(b"TILE", b"x" * 100)
        sizes.append(path.stat().st_size)
    assert sizes[1] - sizes[0] == 100 + CHUNK_FRAMING_BYTES


def test_compare_trains_resumes_and_skips(
    tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`autoenc compare` end to end on the tiny data: train, report; resume after a crash; skip."""
    caplog.set_level(logging.INFO, logger="autoenc.compare")
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"data: {{root: {tiny_root}}}\nlogs: {tmp_path / 'logs'}\nout: {tmp_path / 'out'}\n"
        "overlay: [configs/compare/cpu_train.yaml]\n"
        "runs:\n  - name: plain\n    config: configs/plain.yaml\n"
        "    args: [--model.model.init_args.base_channels=4, --trainer.max_epochs=1,"
        " --data.batch_size=4, --data.crop_size=32, --trainer.precision=32-true,"
        " --trainer.check_val_every_n_epoch=1]\n"
        "evaluate: {codecs: [jpeg2000], ladder: [1.5, 3, 6], gallery: 1}\n"
    )
    assert main(["compare", str(plan)]) == 0
    assert "plain              training (new" in caplog.text
    assert (tmp_path / "out" / "report.md").is_file()
    timing = json.loads((tmp_path / "out" / "timing.json").read_text())
    assert set(timing["train_s"]) == {"plain"} and timing["evaluate_s"] > 0
    (tmp_path / "logs" / "plain" / "DONE").unlink()  # as if it had died after its checkpoint
    caplog.clear()
    assert main(["compare", str(plan)]) == 0
    assert "plain              training (resuming" in caplog.text
    caplog.clear()
    assert main(["compare", str(plan)]) == 0
    assert "already trained" in caplog.text


def test_report_merges_result_folders(
    tiny_root: Path, ckpts: dict[str, Path], tmp_path: Path
) -> None:
    """Codecs and models evaluated separately report together; the same method twice is refused."""
    base = ["evaluate", "--data", str(tiny_root), "--quiet", "--looks", "4.4", "--gallery", "1"]
    a, b = tmp_path / "codecs", tmp_path / "models"
    assert main([*base, "--ladder", *LADDER, "--out", str(a)]) == 0
    assert main([*base, "--codecs", "--model", f"plain={ckpts['plain']}", "--out", str(b)]) == 0
    out = tmp_path / "rep"
    assert main(["report", str(a), str(b), "--out", str(out), "--n-boot", "50"]) == 0
    bd = json.loads((out / "bd.json").read_text())
    assert [r["curve"] for r in bd["psnr"]] == ["plain"]
    assert (out / "gallery.png").is_file()  # the model's patches come from the second folder
    assert main(["report", str(a), str(a), "--out", str(out)]) == 2


# --- evaluation against the clean truth -----------------------------------------------------

TRUTH_KEYS = ("truth_file", "truth_nbytes", "truth_sha256")
TRUTH_COLUMNS = ("psnr_truth", "enl_ratio_truth", "homogeneous_fraction_truth")


def block_mean_truth(codes: np.ndarray) -> np.ndarray:
    """A truth clearly unlike the image: 16x16 block means of its codes (flat, so homogeneous)."""
    n, c, h, w = codes.shape
    blocks = codes.astype(np.float64).reshape(n, c, h // 16, 16, w // 16, 16)
    means = blocks.mean(axis=(3, 5), keepdims=True)
    return np.rint(np.broadcast_to(means, blocks.shape)).reshape(codes.shape).astype(np.uint16)


def with_truth(src: Path, dst: Path, make: Callable[[np.ndarray], np.ndarray] | None) -> Path:
    """Copy a dataset, then give every shard the truth ``make(codes)``, or none at all."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "truth", ignore_errors=True)  # whatever the generator wrote
    manifest = read_manifest(dst)
    manifest.pop("truth", None)
    for shard in manifest["shards"]:
        for k in TRUTH_KEYS:
            shard.pop(k, None)
        if make is not None:
            rel = f"truth/{Path(shard['file']).stem}.npy"
            path = write_npy(dst / rel, make(np.load(dst / shard["file"])))
            shard.update(truth_file=rel, truth_nbytes=path.stat().st_size,
                         truth_sha256=file_sha256(path))  # fmt: skip
    if make is not None:
        manifest["truth"] = {"kind": "reflectivity", "encoding": "test: 16x16 block means"}
    write_manifest(dst, manifest)
    return dst


@pytest.fixture(scope="module")
def truth_root(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_truth(tiny_root, tmp_path_factory.mktemp("truth") / "d", block_mean_truth)


def _evaluate(root: Path, out: Path, plain: Path) -> Results:
    argv = ["evaluate", "--data", str(root), "--out", str(out), "--ladder", "1.5", "6",
            "--gallery", "1", "--quiet", "--looks", "4.4", "--model", f"plain={plain}"]  # fmt: skip
    assert main(argv) == 0
    return Results.load(out)


def test_truth_metrics_known_answers() -> None:
    """Blocks are chosen on the truth; a lossless x̂ scores the input's own PSNR vs truth."""
    g = torch.Generator().manual_seed(0)
    cols = torch.arange(64, dtype=torch.float64)
    db = torch.where(cols < 32, -5.0, -5.0 + 0.25 * (cols - 32)).expand(2, 1, 64, 64)  # (B,1,H,W)
    speckle = torch.distributions.Gamma(4.4, 4.4).sample((2, 1, 64, 64))
    x = ((db + 10 * torch.log10(speckle) + 25) / 30).clamp(0, 1).float()
    truth = ((db + 25) / 30).float()  # flat left half, 4 dB ramp per block on the right
    window = (-25.0, 5.0)
    same = truth_metrics(x, x, truth, window)
    torch.testing.assert_close(same["psnr_truth"], psnr(x, truth))
    torch.testing.assert_close(same["enl_ratio_truth"], torch.ones(2))
    torch.testing.assert_close(same["homogeneous_fraction_truth"], torch.full((2,), 0.5))
    perfect = truth_metrics(truth, x, truth, window)  # a perfect despeckler: flat blocks
    assert torch.isinf(perfect["psnr_truth"]).all() and (perfect["enl_ratio_truth"] > 1e6).all()
    noisy = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (truth_metrics(noisy, x, truth, window)["enl_ratio_truth"] < 0.9).all()  # noise added
    valid = torch.ones_like(x, dtype=torch.bool)
    valid[0, 0, 0, 0] = False  # one invalid pixel drops its block, and leaves the PSNR
    clipped = truth.clone()
    clipped[1, 0, 16:32, 0:16] = 0.0  # a clipped truth block is not homogeneous either
    m = truth_metrics(x, x, clipped, window, valid=valid)
    torch.testing.assert_close(m["homogeneous_fraction_truth"], torch.tensor([7 / 16, 7 / 16]))
    torch.testing.assert_close(m["psnr_truth"], psnr(x, clipped, valid))
    with pytest.raises(ValueError, match="differ in shape"):
        truth_metrics(x, x, truth[..., :32], window)
    with pytest.raises(ValueError, match="cv_max"):
        truth_metrics(x, x, truth, window, cv_max=0.0)
    all_ramp = truth.clone()
    all_ramp[..., :32] = all_ramp[..., 32:]  # no flat block left: NaN, not a crash
    assert torch.isnan(truth_metrics(x, x, all_ramp, window)["enl_ratio_truth"]).all()


def test_evaluate_and_report_with_truth(
    truth_root: Path, ckpts: dict[str, Path], tmp_path: Path
) -> None:
    res = _evaluate(truth_root, tmp_path / "r", ckpts["plain"])
    n = res.meta["n"]
    assert {r["role"] for r in res.records} == {"model", "ladder", "matched"}
    manifest = read_manifest(truth_root)
    scenes = manifest["scenes"]
    shards = [s for s in manifest["shards"] if scenes[s["scene_id"]]["split"] == "test"]
    img = np.concatenate([np.load(truth_root / s["file"]) for s in shards])[:n]
    ref = np.concatenate([np.load(truth_root / s["truth_file"]) for s in shards])[:n]
    data = PatchDataset(truth_root, shards)
    valid = torch.stack([data.mask(i) for i in range(n)])  # (N, 1, 32, 32) bool
    # the block-mean truth is flat in every block: homogeneous where all is valid and unclipped
    edge = (img == 0) | (img == 65535) | (ref == 0) | (ref == 65535) | ~valid.numpy()
    usable = ~edge.reshape(n, 2, 16, 2, 16).any(axis=(2, 4))  # (N, 2, 2) blocks
    assert 0 < usable.sum() < usable.size  # the data has both kinds of block
    for r in res.records:  # every record, learned, ladder and matched, is scored against it
        assert all(k in r for k in TRUTH_COLUMNS) and math.isfinite(r["psnr_truth"])
        fraction = usable[r["index"]].mean()
        assert r["homogeneous_fraction_truth"] == pytest.approx(fraction)
        assert (r["enl_ratio_truth"] > 0) if fraction > 0 else math.isnan(r["enl_ratio_truth"])
    # the speckled input's own PSNR against the truth, recomputed from the files by hand
    x, t = (decode(torch.from_numpy(a.astype(np.int32))) for a in (img, ref))  # (N, 1, P, P)
    original = psnr(x, t, valid).double().numpy()  # (N,)
    assert res.meta["psnr_truth_original"] == pytest.approx(original.mean(), abs=1e-5)
    assert res.meta["truth"]["kind"] == "reflectivity" and res.meta["truth"]["cv_max"] == 0.05
    # near-lossless JPEG 2000 (6 bpp): PSNR vs the original is high, vs the truth ≈ the input's
    high = sorted(res.select(method="jpeg2000:6bpp"), key=lambda r: r["index"])
    for r, o in zip(high, original, strict=True):
        assert r["psnr"] > o + 10 and r["psnr_truth"] == pytest.approx(o, abs=0.3)
        if usable[r["index"]].any():
            assert r["enl_ratio_truth"] == pytest.approx(1.0, abs=0.1)
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "r"), "--out", str(out), "--n-boot", "50"]) == 0
    text = (out / "report.md").read_text()
    assert "## Against the clean truth" in text
    assert f"**{res.meta['psnr_truth_original']:.2f} dB**" in text  # the "no coding" reference
    assert "PSNR vs truth (dB)" in text and ("below cap" in text or "above cap" in text)
    bd = json.loads((out / "bd.json").read_text())
    assert [r["curve"] for r in bd["psnr_truth"]] == ["plain"]
    assert bd["psnr_truth"][0]["quality"] == "psnr_truth"
    assert bd["psnr"][0]["max_quality"] == pytest.approx(res.meta["psnr_cap"] - 0.3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["psnr_truth_original"] == pytest.approx(res.meta["psnr_truth_original"])
    h, w = np.asarray(Image.open(out / "rd.png").convert("L")).shape
    assert w / h > 1.6  # 2x3 panels: PSNR against the truth and its ENL ratio added


def test_evaluate_and_report_without_truth(
    tiny_root: Path, ckpts: dict[str, Path], tmp_path: Path
) -> None:
    root = with_truth(tiny_root, tmp_path / "d", None)
    res = _evaluate(root, tmp_path / "r", ckpts["plain"])
    assert not any("truth" in k for r in res.records for k in r)
    assert "truth" not in res.meta and "psnr_truth_original" not in res.meta
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "r"), "--out", str(out), "--n-boot", "50"]) == 0
    text = (out / "report.md").read_text()
    assert "clean truth" not in text and "vs truth" not in text  # (the tmp path says "truth")
    assert not re.search(r"\bnan\b", text, flags=re.I)
    assert "regime" in text and "BD-PSNR" in text
    assert set(json.loads((out / "bd.json").read_text())) == {"psnr", "psnr_codestream", "ssim"}
    h, w = np.asarray(Image.open(out / "rd.png").convert("L")).shape
    assert w / h < 1.5  # the 2x2 panels of old
    with open(out / "points.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["regime"] for r in rows} <= {"below cap", "above cap", ""}
    assert not any("truth" in r["metric"] for r in rows)


def test_rising_branch_stops_at_the_best_quality() -> None:
    from autoenc.evaluation.summary import rising_branch

    class P:
        def __init__(self, bpp: float, q: float) -> None:
            self.v = {"bpp": bpp, "psnr_truth": q}

        def mean(self, key: str) -> float:
            return self.v[key]

    pts = [P(1.0, 20.9), P(0.1, 22.9), P(0.05, 22.2), P(0.5, 21.2), P(0.03, 19.6)]
    branch = rising_branch(pts, "psnr_truth")  # type: ignore[arg-type]
    assert [p.mean("bpp") for p in branch] == [0.03, 0.05, 0.1]
