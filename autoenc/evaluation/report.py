# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""``autoenc report``: results folders → Markdown report, R-D plots, gallery (and TensorBoard).

Every number in the report is computed here from the per-sample records; nothing is copied by
hand. Outputs (each written to a temporary name, then renamed): ``report.md``, ``rd.png``,
``gallery.png``, ``points.csv`` (every operating point, every metric: mean, std, CI) and
``bd.json`` (the BD table, machine-readable).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoenc.evaluation import plots, tables
from autoenc.evaluation.records import GALLERY_NAME, Results, jsonable, load_gallery, write_bytes
from autoenc.evaluation.summary import (
    CAP_MARGIN_DB,
    METRICS,
    Point,
    bd_table,
    operating_points,
    regime,
    scene_groups,
)

METHOD_TEXT = """\

## Method

- **Data.** Patches of the scene-disjoint `{split}` split, as stored: uint16 codes of the clipped
  dB window [{w0:g}, {w1:g}] dB, the domain the models were trained on. Every codec sees the same
  codes; the classical codecs get them as **16-bit** images.
- **Rate.** Real bytes × 8 / pixels. Learned models: the bytes a patch costs inside an `.aec` file
  (TILE payload with its framing, entropy-coded by the learned prior). Classical codecs: the whole
  file (JPEG 2000: JP2 container); codestream-only rates are in `points.csv` (`stream_bpp`) and a
  second BD table uses them.
- **Metrics** (per patch, then averaged; formulas in `autoenc/metrics`): PSNR with peak 1 on the
  window (= PSNR in dB units with peak W; the dB-unit error is `rmse_db`), SSIM (Gaussian 11 × 11,
  σ 1.5, the training setting), MS-SSIM (torchmetrics defaults; only for sides ≥ 176 px), ENL ratio
  (local ENL = mean²/variance of linear intensity in 16 × 16 blocks that are homogeneous in the
  original, reconstruction / original; summarised by its geometric mean, because a flat
  reconstruction drives it to ~1e12), EPI (Pearson correlation of Laplacian-filtered dB images),
  radiometric bias (mean dB difference) and ratio-image statistics (original / reconstruction in
  linear intensity).
- **Uncertainty.** Mean ± std over patches, with a 95 % percentile-bootstrap interval of the mean
  ({n_boot} replicates). BD-rate: PCHIP of ln(bpp) against quality, integrated over the
  overlapping quality range (Bjøntegaard, VCEG-M33, no extrapolation); a fixed-rate model (one
  point) is compared at its own quality ("single-point"). Its interval is a paired bootstrap:
  each replicate redraws the {unit}, identically for the model and the anchor.{unit_note}
- **Speckle cap.** With L̂ = {looks:.2f} looks (estimated from the original patches: mode of the
  16 × 16 block ENL), a codec that sends nothing about the speckle has MSE ≥ σ_dB² with
  σ_dB = {sigma:.2f} dB, so PSNR ≤ 20·log10(W/σ_dB) = **{cap:.2f} dB**. Above it, PSNR rewards
  coding speckle. Every operating point is labelled **below cap** or **above cap** by its mean
  PSNR, and the PSNR BD tables add a BD-rate over the overlap's part at or below
  cap − {margin:g} dB = {below:.2f} dB, where PSNR does not yet reward coding noise.

"""

TRUTH_TEXT = """
## Against the clean truth

This synthetic dataset stores the noise-free reflectivity of every patch (the *truth*, coded on
the same window). **PSNR vs truth** is the PSNR of the reconstruction against it (same
definition, valid pixels); it is not capped by the speckle and rewards removing it rather than
coding it. The speckled input itself, with no coding at all, scores **{ref} dB** (± {ref_std}
over patches): a codec above that line is closer to the truth than its own input. **ENL ratio,
truth-homogeneous blocks**: as the ENL ratio, but over the 16 × 16 blocks whose truth intensity
has a CV ≤ {cv:g} (fully valid, unclipped), so edges and texture cannot enter; > 1 means the codec
smoothed speckle. At high rates a codec converges to its input, so PSNR vs truth peaks and
falls again; the BD-rate below is therefore taken over each curve's rising branch (its points up
to its best PSNR vs truth), while BD-PSNR (at equal rate) uses every point.

"""


def merge(results: Sequence[Results]) -> Results:
    """Concatenate result sets of the same dataset, split and patches.

    Raises:
        ValueError: different datasets/splits/patch counts, or a method present twice.
    """
    if not results:
        raise ValueError("no results to report")
    base = results[0]
    key = ("dataset", "split", "n")
    merged = Results(dict(base.meta), list(base.records))
    seen = set(base.methods())
    for r in results[1:]:
        if tuple(r.meta.get(k) for k in key) != tuple(base.meta.get(k) for k in key):
            raise ValueError(
                "cannot merge results of different data: "
                f"{[r.meta.get(k) for k in key]} vs {[base.meta.get(k) for k in key]}"
            )
        dup = seen & set(r.methods())
        if dup:
            raise ValueError(f"method(s) {sorted(dup)} appear in more than one results folder")
        seen |= set(r.methods())
        merged.records += r.records
        merged.meta["models"] = base.meta.get("models", []) + r.meta.get("models", [])
    return merged


def _gallery_rows(points: Sequence[Point]) -> list[tuple[str, str | None, str]]:
    matched = {p.matched_to: p.method for p in points if p.role == "matched"}
    return [
        (p.method, matched.get(p.method), f"{p.method}\n{p.mean('bpp'):.3f} bpp")
        for p in points
        if p.role == "model"
    ]


def write_report(
    results: Results,
    out: Path,
    n_boot: int = 1000,
    gallery_dirs: Sequence[Path] = (),
    tb_logdir: Path | None = None,
    timing: dict[str, Any] | None = None,
    cluster: str = "patch",
) -> Path:
    """Write the report into ``out``; returns the path of ``report.md``.

    ``timing`` (from ``autoenc compare``) adds the training and evaluation wall times.
    ``cluster="scene"`` makes every interval a cluster bootstrap over scenes.

    Raises:
        ValueError: an unknown ``cluster``, or ``scene`` with fewer than 2 scenes.
    """
    if cluster not in ("patch", "scene"):
        raise ValueError(f"cluster must be 'patch' or 'scene', got {cluster!r}")
    groups = scene_groups(results) if cluster == "scene" else None
    if groups is not None and len(set(groups.tolist())) < 2:
        raise ValueError("a bootstrap over scenes needs at least 2 scenes in the split")
    out.mkdir(parents=True, exist_ok=True)
    meta = results.meta
    points = operating_points(results, n_boot=n_boot, groups=groups)
    cap = float(meta.get("psnr_cap", math.nan))
    below = cap - CAP_MARGIN_DB if math.isfinite(cap) else None
    opts: dict[str, Any] = {"n_boot": n_boot, "groups": groups}
    bd = bd_table(points, "psnr", max_quality=below, **opts)
    bd_stream = bd_table(points, "psnr", anchor_rate="stream_bpp", max_quality=below, **opts)
    bd_ssim = bd_table(points, "ssim", **opts)
    truth = any("psnr_truth" in p.stats for p in points)
    bd_truth = bd_table(points, "psnr_truth", rising=True, **opts) if truth else []
    ref = meta.get("psnr_truth_original")
    title = f"{meta.get('dataset')} · {meta.get('split')} split · n = {meta.get('n')} patches"
    fig = plots.rd_figure(points, cap, title, truth_reference=ref if truth else None)
    plots.save(fig, out / "rd.png")
    figs = {"rd": out / "rd.png"}
    gallery: dict[str, np.ndarray] = {}
    for d in gallery_dirs or [out]:  # merged results: every folder's kept patches
        gallery.update(load_gallery(d / GALLERY_NAME))
    originals = sorted(int(k.split("/")[1]) for k in gallery if k.startswith("original/"))
    shown: list[tuple[int, str]] = []  # (patch index, PNG name)
    for k, idx in enumerate(originals):
        rows = [r for r in _gallery_rows(points) if f"{r[0]}/{idx}" in gallery]
        if rows:
            name = "gallery.png" if k == 0 else f"gallery-{idx}.png"
            plots.save(plots.gallery_figure(gallery, idx, rows), out / name)
            figs[name.removesuffix(".png")] = out / name
            shown.append((idx, name))
    w0, w1 = meta["window_db"]
    parts = [
        "# autoenc rate-distortion report\n",
        f"{title}; scenes: {', '.join(meta.get('scenes', []))}.\n",
        METHOD_TEXT.format(
            split=meta.get("split"),
            w0=w0,
            w1=w1,
            n_boot=n_boot,
            unit="patches" if groups is None else "scenes (all their patches; a cluster bootstrap)",
            unit_note=""
            if groups is not None
            else " Patches of one scene are correlated, so these intervals are optimistic; "
            "`autoenc report --cluster scene` redraws whole scenes instead.",
            looks=meta["looks"],
            sigma=meta["sigma_db"],
            cap=cap,
            margin=CAP_MARGIN_DB,
            below=math.nan if below is None else below,
        ),  # fmt: skip
        "## BD-rate against JPEG 2000 (PSNR)\n\n",
        "Negative BD-rate: fewer bits than JPEG 2000 for the same PSNR. BD-PSNR: PSNR "
        "difference at the same rate (dB). Anchor: JPEG 2000 file bytes (JP2 container).\n\n",
        tables.bd_markdown(tables.bd_dicts(bd)),
        "\nThe same against the JPEG 2000 **codestream** bytes (no JP2 boxes):\n\n",
        tables.bd_markdown(tables.bd_dicts(bd_stream)),
        "\nWith SSIM as the quality (BD-quality in SSIM units):\n\n",
        tables.bd_markdown(tables.bd_dicts(bd_ssim)),
    ]
    if truth:
        parts += [
            TRUTH_TEXT.format(ref=tables.fmt(_num(ref), 2), cv=meta["truth"]["cv_max"],
                              ref_std=tables.fmt(_num(meta.get("psnr_truth_original_std")), 2)),
            "BD against JPEG 2000 with PSNR vs truth as the quality:\n\n",
            tables.bd_markdown(tables.bd_dicts(bd_truth)),
            "\nOperating points against the truth (regime: PSNR vs the speckled original):\n\n",
            tables.points_table(points, tables.TRUTH_COLUMNS, cap),
        ]  # fmt: skip
    parts += [
        "\n## Rate-distortion\n\n![R-D curves](rd.png)\n\n",
        "Operating points: mean ± std over patches [95 % CI of the mean]; ENL ratios: geometric "
        f"mean ×/÷ geometric std [CI]. Regime: mean PSNR against the cap ({tables.fmt(cap, 2)} dB)."
        "\n\n",
        tables.points_table(points, tables.MAIN_COLUMNS, cap),
        "\nThe other metrics, same format (MS-SSIM needs sides ≥ 176 px):\n\n",
        tables.points_table(points, tables.MORE_COLUMNS, cap),
        "\n## Each model against JPEG 2000 at its own bit rate, patch by patch\n\n",
        tables.matched_table(points, groups),
        "\n## SAR metrics near 1 bpp\n\n",
        "Each curve's operating point closest to 1 bpp (in log rate):\n\n",
        tables.near_one_table(points, cap=cap),
    ]
    if shown:
        parts += [
            "\n## Gallery\n\n",
            "Patches spread evenly over the split (not picked by score). Each row is zoomed on "
            "the 64 × 64 window where that model's error is largest; JPEG 2000 is coded at the "
            "model's bpp on that very patch. Error maps: |reconstruction − original| on the "
            "[0, 1] window, 0 … 0.3.\n\n",
        ]
        parts += [f"Patch {idx}:\n\n![gallery, patch {idx}]({name})\n\n" for idx, name in shown]
    parts += ["\n## Rate targeting of the classical codecs\n\n", tables.targeting(points)]
    parts += [
        "\n## Provenance\n\n",
        f"- evaluation: autoenc {meta.get('autoenc')}, device {meta.get('device')}, "
        f"{tables.fmt(meta.get('seconds', math.nan), 1)} s\n",
        f"- codecs: {', '.join(meta.get('codecs', []))}; ladder {meta.get('ladder')} bpp\n",
    ]
    if timing:
        train = timing.get("train_s", {})
        parts.append(
            f"- wall time: training {sum(train.values()):.0f} s ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in train.items())
            + f"), evaluation {timing.get('evaluate_s', math.nan):.0f} s\n"
        )
    parts += [f"- {m['name']}: `{m['checkpoint']}` (sha256 {m['weights_sha256'][:12]})\n"
              for m in meta.get("models", [])]  # fmt: skip
    text = "".join(parts)
    _write_points_csv(points, out / "points.csv", cap)
    bd_tables = {"psnr": bd, "psnr_codestream": bd_stream, "ssim": bd_ssim}
    if truth:
        bd_tables["psnr_truth"] = bd_truth
    _write_json({k: tables.bd_dicts(v) for k, v in bd_tables.items()}, out / "bd.json")
    keys = ("dataset", "split", "n", "scenes", "looks", "sigma_db", "psnr_cap", "window_db",
            "seconds", *(("truth", "psnr_truth_original") if truth else ()))  # fmt: skip
    summary = {k: meta.get(k) for k in keys}
    summary["timing"] = timing
    _write_json(summary, out / "summary.json")
    write_bytes(out / "report.md", text.encode())
    if tb_logdir is not None:
        _to_tensorboard(tb_logdir, figs)
    return out / "report.md"


def _num(v: Any) -> float:
    """A meta-data number, NaN when absent or null."""
    return math.nan if v is None else float(v)


def _write_points_csv(points: Sequence[Point], path: Path, cap: float) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "family", "curve", "point", "role", "matched_to", "n", "regime",
                "metric", "mean", "std", "median", "ci_lo", "ci_hi", "n_nan"])  # fmt: skip
    for p in points:
        label = regime(p.mean("psnr"), cap)
        for k in METRICS:
            if k in p.stats:
                s = p.stats[k]
                w.writerow([p.method, p.family, p.curve, p.point, p.role, p.matched_to, p.n,
                            label, k, s.mean, s.std, s.median, s.ci_lo, s.ci_hi,
                            s.n_nan])  # fmt: skip
    write_bytes(path, buf.getvalue().encode())


def _write_json(doc: Any, path: Path) -> None:
    """JSON with NaN written as null (strict JSON), atomically."""
    write_bytes(path, json.dumps(jsonable(doc), indent=1, allow_nan=False).encode())


def _to_tensorboard(logdir: Path, figs: dict[str, Path]) -> None:
    """Add the report's figures as images to a TensorBoard run in ``logdir``."""
    from matplotlib.image import imread
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir))
    try:
        for name, path in figs.items():
            img = (imread(path)[..., :3] * 255).astype(np.uint8)
            writer.add_image(f"report/{name}", img, dataformats="HWC")
    finally:
        writer.close()
