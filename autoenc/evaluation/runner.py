# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Run learned models and classical codecs over one split of a patch dataset.

Every method sees the same patches: the stored uint16 codes of the clipped dB window, which are
what the models were trained on and what the classical codecs encode (16-bit, not 8-bit
truncated). Each (method, operating point, patch) becomes one record with its real bit rate and
every metric of :func:`autoenc.metrics.evaluate_batch`, computed per batch on ``device``.

When every shard of the split stores its clean truth (synthetic data), every record also gets
``psnr_truth``, ``enl_ratio_truth`` and ``homogeneous_fraction_truth``
(:mod:`autoenc.metrics.truth`), and the meta-data the speckled input's own PSNR against the
truth (``psnr_truth_original``, what "no coding" gives). Real data has no truth, and then no
such columns.

Three kinds of rows: ``model`` (a checkpoint at its own rate), ``ladder`` (a classical codec at
each rate of a fixed ladder, to draw its R-D curve) and ``matched`` (a classical codec at the
exact real bpp a model spent on that very patch, for paired comparisons and the gallery).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import autoenc
from autoenc.baselines import get_codec
from autoenc.codec.despeckle import Despeckle
from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.patches import PatchDataset, decode
from autoenc.evaluation.learned import LearnedCodec
from autoenc.evaluation.records import GALLERY_NAME, Results, save_gallery
from autoenc.metrics import TRUTH_CV_MAX, evaluate_batch, psnr
from autoenc.metrics.sar import estimate_looks, psnr_cap, sigma_db, unit_to_intensity
from autoenc.sar.normalisation import Normalisation, codes_from_unit

log = logging.getLogger(__name__)

#: Classical R-D ladder: dense at low rates, where the learned models live, up to 2 bpp. It starts
#: at JPEG 2000's smallest file for a 256² patch (262 bytes, 0.032 bpp), which extends the
#: anchor's curve as far down in quality as the codec can go.
DEFAULT_LADDER: tuple[float, ...] = (
    0.032, 0.045, 0.065, 0.09, 0.13, 0.18, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0
)  # fmt: skip


@dataclass
class ModelSpec:
    """A checkpoint to evaluate: ``curve`` groups the operating points of one architecture."""

    curve: str
    point: str
    path: Path
    quality: int | None = None  # operating point of a variable-rate model
    despeckle: float | None = None  # decode-time despeckling (None: the model's default)

    @property
    def name(self) -> str:
        """``curve`` or ``curve:point``: the method label in records and plots."""
        return self.curve if self.point == "" else f"{self.curve}:{self.point}"

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``CURVE[:POINT]=CHECKPOINT`` (or a bare path: the run folder's name is the curve)."""
        if "=" in text:
            label, path = text.split("=", 1)
            curve, _, point = label.partition(":")
        else:
            path = text
            p = Path(path)
            curve = p.parent.parent.name if p.parent.name == "checkpoints" else p.stem
            point = ""
        if not curve or not path:
            raise ValueError(f"bad --model {text!r}: expected CURVE[:POINT]=CHECKPOINT")
        return cls(curve, point, Path(path))


@dataclass
class EvalConfig:
    """What :func:`evaluate` runs."""

    root: Path
    split: str = "test"
    models: list[ModelSpec] = field(default_factory=list)
    codecs: list[str] = field(default_factory=lambda: ["jpeg2000"])
    ladder: Sequence[float] = DEFAULT_LADDER
    matched: bool = True  # the first codec at each model's per-patch bpp
    device: str = "cpu"
    batch_size: int = 8
    limit: int | None = None  # evaluate only the first N patches (tests, quick looks)
    gallery: int = 2  # patches whose reconstructions are kept for the report's gallery
    looks: float | None = None  # the data's ENL; estimated from the split when None


def _split_dataset(root: Path, split: str) -> tuple[PatchDataset, dict[str, Any]]:
    manifest = read_manifest(root)
    validate_shards(root, manifest)
    scenes = manifest["scenes"]
    shards = [s for s in manifest["shards"] if scenes[s["scene_id"]]["split"] == split]
    if not shards:
        have = sorted({str(v["split"]) for v in scenes.values()})
        raise ValueError(f"{root}: split {split!r} has no patches (splits present: {have})")
    return PatchDataset(root, shards), manifest


def _load_truth(dataset: PatchDataset, n: int) -> Tensor | None:
    """The first ``n`` truth patches, ``(N, 1, P, P)`` float32 in [0, 1]; None without truth."""
    if not dataset.has_truth:
        if any("truth_file" in s for s in dataset.shards):
            log.warning("only some shards of the split store the truth: evaluating without it")
        return None
    codes = [dataset.truth(i) for i in range(n)]  # (1, P, P) uint16 each
    return decode(torch.stack([c.to(torch.int32) for c in codes if c is not None]))


def _truth_meta(
    manifest: dict[str, Any], x: Tensor, truth: Tensor, valid: Tensor
) -> dict[str, Any]:
    """Meta-data of an evaluation against the truth: its record and the speckled input's PSNR."""
    ref = psnr(x, truth, valid).double().cpu().numpy()  # (N,) the "no coding" reference
    ref = ref[np.isfinite(ref)]
    return {
        "truth": {**dict(manifest.get("truth") or {}), "cv_max": TRUTH_CV_MAX, "block": 16},
        "psnr_truth_original": float(ref.mean()) if ref.size else math.nan,
        "psnr_truth_original_std": float(ref.std(ddof=1)) if ref.size > 1 else math.nan,
    }


def _gallery_indices(n: int, count: int) -> list[int]:
    """Evenly spread patches (deterministic), so the gallery is not cherry-picked."""
    if count <= 0 or n == 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, n - 1, min(count, n) + 2)[1:-1]})


class _Progress:
    """A rich progress bar over all coding work; silent when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar: Any = None
        if enabled:
            from rich.progress import Progress

            self.bar = Progress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task("evaluating", total=total)

    def step(self, n: int, label: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=n, description=label)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def evaluate(cfg: EvalConfig, out: Path, progress: bool = False) -> Results:
    """Evaluate ``cfg`` and write ``out/results.json``, ``out/samples.csv``, ``out/gallery.npz``.

    Raises:
        ValueError: unknown split or codec, a checkpoint trained on another dB window,
            patches the models cannot take.
        autoenc.codec.model_io.ModelError: a checkpoint that cannot be loaded.
    """
    t_start = time.perf_counter()
    dataset, manifest = _split_dataset(Path(cfg.root), cfg.split)
    norm = Normalisation.from_dict(manifest["normalisation"])
    window = norm.window
    n = len(dataset) if cfg.limit is None else min(len(dataset), cfg.limit)
    if n == 0:
        raise ValueError(f"nothing to evaluate: limit={cfg.limit}")
    if any(r <= 0 or not math.isfinite(r) for r in cfg.ladder):
        raise ValueError(f"ladder rates must be finite and > 0, got {list(cfg.ladder)}")
    names = [m.name for m in cfg.models]
    if len(set(names)) != len(names) or len(set(cfg.codecs)) != len(cfg.codecs):
        raise ValueError(f"model names and codecs must be unique, got {names} and {cfg.codecs}")
    device = torch.device(cfg.device)
    codecs = {name: get_codec(name) for name in cfg.codecs}
    models = [
        LearnedCodec(m.path, m.name, device, m.quality, Despeckle(m.despeckle)) for m in cfg.models
    ]
    for spec, model in zip(cfg.models, models, strict=True):
        if any(abs(a - b) > 1e-6 for a, b in zip(model.window_db, window, strict=True)):
            raise ValueError(
                f"{spec.path} was trained on the dB window {model.window_db} but {cfg.root} "
                f"uses {window}; evaluate it on data prepared with its window"
            )
    codes = np.stack([np.asarray(dataset[i]["image"][0]) for i in range(n)])  # (N, P, P) uint16
    masks = torch.stack([dataset.mask(i) for i in range(n)])  # (N, 1, P, P) bool
    scene_ids = [dataset.scene_of(i) for i in range(n)]
    # (N, 1, P, P) float32 and bool, moved to the device once for every method's metrics
    x_all = decode(torch.from_numpy(codes.astype(np.int32))[:, None]).to(device)
    masks = masks.to(device)
    truth = _load_truth(dataset, n)
    truth = None if truth is None else truth.to(device)
    looks = cfg.looks
    if looks is None:
        looks = estimate_looks(unit_to_intensity(x_all, norm), valid=masks)
    results = Results(
        meta={
            "autoenc": autoenc.__version__,
            "dataset": str(cfg.root),
            "split": cfg.split,
            "n": n,
            "scenes": sorted(set(scene_ids)),
            "patch_size": int(codes.shape[-1]),
            "window_db": list(window),
            "looks": float(looks),
            "looks_estimated": cfg.looks is None,
            "sigma_db": sigma_db(looks),
            "psnr_cap": psnr_cap(looks, norm),
            "device": str(device),
            "codecs": list(cfg.codecs),
            "ladder": [float(r) for r in cfg.ladder],
            "models": [
                {
                    "name": s.name,
                    "curve": s.curve,
                    "point": s.point,
                    "checkpoint": str(s.path),
                    "quality": s.quality,
                    "despeckle": s.despeckle,
                    "spec": m.spec,
                    "weights_sha256": m.loaded.weights_sha256,
                }
                for s, m in zip(cfg.models, models, strict=True)
            ],  # fmt: skip
        }
    )
    if truth is not None:
        results.meta.update(_truth_meta(manifest, x_all, truth, masks))
    keep = set(_gallery_indices(n, cfg.gallery))
    work = n * (len(models) + len(cfg.ladder) * len(codecs) + (len(models) if cfg.matched else 0))
    run = _Run(results, codes, x_all, masks, truth, scene_ids, norm, float(looks), device,
               cfg.batch_size, keep, _Progress(progress, work))  # fmt: skip
    try:
        for spec, model in zip(cfg.models, models, strict=True):
            bpp = run.learned(model, spec)
            if cfg.matched and codecs:
                first = cfg.codecs[0]
                run.classical(codecs[first], first, bpp, matched_to=spec.name)
        for name, codec in codecs.items():
            for rate in cfg.ladder:
                run.classical(codec, name, [rate] * n)
    finally:
        run.bar.close()
    results.meta["seconds"] = time.perf_counter() - t_start
    out.mkdir(parents=True, exist_ok=True)
    save_gallery(out / GALLERY_NAME, run.gallery)
    results.save(out)
    return results


def _batches(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class _Run:
    """Shared state of one evaluation: the patches, the metric settings, the outputs."""

    def __init__(
        self,
        results: Results,
        codes: np.ndarray,
        x_all: Tensor,
        masks: Tensor,
        truth: Tensor | None,
        scene_ids: list[str],
        norm: Normalisation,
        looks: float,
        device: torch.device,
        batch_size: int,
        keep: set[int],
        bar: _Progress,
    ) -> None:
        self.results, self.codes, self.x_all, self.masks = results, codes, x_all, masks
        self.truth = truth  # (N, 1, P, P) on the device, or None
        self.norm, self.looks, self.device = norm, looks, device
        self.batches = _batches(codes.shape[0], batch_size)
        self.keep, self.bar = keep, bar
        self.base: dict[str, list[Any]] = {"index": list(range(codes.shape[0])),
                                           "scene_id": scene_ids}  # fmt: skip
        self.gallery: dict[str, np.ndarray] = {f"original/{i}": codes[i] for i in sorted(keep)}
        self.pixels = int(codes.shape[-1] * codes.shape[-2])

    def _score(self, rows: dict[str, list[Any]], x_hat: Tensor, sl: slice, key: str) -> None:
        """Every metric of one batch, on the device; keep its gallery patches."""
        x, valid = self.x_all[sl], self.masks[sl]  # already on the device
        truth = None if self.truth is None else self.truth[sl]
        m = evaluate_batch(x_hat.to(self.device), x, self.norm, self.looks, valid=valid,
                           truth=truth)  # fmt: skip
        for k, v in m.items():
            rows.setdefault(k, []).extend(v.double().cpu().tolist())
        for j, i in enumerate(range(sl.start, sl.stop)):
            if i in self.keep:
                u = x_hat[j, 0].detach().float().cpu().numpy()
                self.gallery[f"{key}/{i}"] = codes_from_unit(u)

    def learned(self, model: LearnedCodec, spec: ModelSpec) -> list[float]:
        """Code every patch with a model; returns the per-patch bpp."""
        rows: dict[str, list[Any]] = {}
        for sl in self.batches:
            r = model.code(self.x_all[sl])
            self._score(rows, r.x_hat, sl, spec.name)
            k = len(r.nbytes)
            rows.setdefault("bpp", []).extend(8.0 * b / self.pixels for b in r.nbytes)
            rows.setdefault("stream_bpp", []).extend(8.0 * b / self.pixels for b in r.stream_bytes)
            rows.setdefault("encode_s", []).extend([r.encode_s / k] * k)  # batch time, shared
            rows.setdefault("decode_s", []).extend([r.decode_s / k] * k)
            self.bar.step(k, spec.name)
        self.results.add_rows(spec.name, "learned", spec.curve, spec.point, "model", "",
                              self.base, rows)  # fmt: skip
        return [float(v) for v in rows["bpp"]]

    def classical(
        self, codec: Any, name: str, targets: Sequence[float], matched_to: str = ""
    ) -> None:
        """Encode every patch at its target bpp, decode, score: one block of records."""
        point = f"@{matched_to}" if matched_to else f"{targets[0]:g}bpp"
        method = f"{name}{point}" if matched_to else f"{name}:{point}"
        rows: dict[str, list[Any]] = {}
        for sl in self.batches:
            decoded = []
            for i in range(sl.start, sl.stop):
                t0 = time.perf_counter()
                enc = codec.encode(self.codes[i], float(targets[i]))
                t1 = time.perf_counter()
                dec = codec.decode(enc.data, self.codes.dtype)
                t2 = time.perf_counter()
                if dec.shape != self.codes[i].shape:
                    raise RuntimeError(f"{name} decoded shape {dec.shape} != {self.codes[i].shape}")
                decoded.append(dec.astype(np.int32))
                cs = enc.codestream_bpp
                rows.setdefault("bpp", []).append(float(enc.bpp))
                rows.setdefault("stream_bpp", []).append(math.nan if cs is None else float(cs))
                rows.setdefault("target_bpp", []).append(float(targets[i]))
                rows.setdefault("hit", []).append(bool(enc.hit))
                rows.setdefault("encodes", []).append(int(enc.encodes))
                rows.setdefault("encode_s", []).append(t1 - t0)
                rows.setdefault("decode_s", []).append(t2 - t1)
            x_hat = decode(torch.from_numpy(np.stack(decoded))[:, None])  # (B, 1, P, P)
            self._score(rows, x_hat, sl, method)
            self.bar.step(sl.stop - sl.start, f"{name} {point}")
        role = "matched" if matched_to else "ladder"
        self.results.add_rows(method, "classical", name, point, role, matched_to, self.base, rows)
