# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``autoenc prepare``: Sentinel-1 GeoTIFF scenes -> a scene-split patch dataset.

Two streaming passes: :mod:`autoenc.data.scan` histograms every scene, the scene-level split
picks the training scenes, their summed histograms fix the dB window, and
:mod:`autoenc.data.patchify` writes the shards. State under ``OUT/.prepare`` (per-scene scan
results and scene records, each written atomically) lets a re-run skip finished work; the
manifest is removed (durably) before anything of an earlier run is changed and written last, so
an interrupted run never reads as a dataset, while a run that fails before changing anything
(``--no-resume`` included: it clears the earlier dataset only once pass 1 and the window checks
have passed) leaves an earlier dataset intact. :mod:`autoenc.data.prepare_folder` locks the
folder and removes dead runs' temp files; :mod:`autoenc.data.prepare_checks` refuses what would
otherwise end as exit 0 with a useless dataset.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autoenc.data.dataset_format import (
    FORMAT_VERSION,
    SPLITS,
    STORAGE_DTYPE,
    VALUE_ENCODING,
    atomic_write,
    split_scenes,
    write_manifest,
)
from autoenc.data.patchify import REJECTIONS, PatchFilter, SceneOutput, patch_scene
from autoenc.data.prepare_checks import (
    check_calibration_used,
    check_patches,
    check_window,
    too_small,
)
from autoenc.data.prepare_folder import STATE_DIR as STATE_DIR  # re-exported
from autoenc.data.prepare_folder import PrepareFolder
from autoenc.data.scan import ScanResult, choose_window, clip_fractions, scan_scene
from autoenc.data.split_file import read_split_file
from autoenc.sar.geotiff import SceneError, SceneReader, find_scenes
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.radiometry import DEFAULT_NOISE_FLOOR_DB, INPUT_KINDS, BlockConverter
from autoenc.sar.scene_input import open_input

log = logging.getLogger(__name__)
STATE_VERSION = 1


class Progress(Protocol):
    """What :func:`prepare` reports while it works (the CLI draws rich bars from it)."""

    def scene(self, stage: str, name: str, rows: int) -> None:
        """A scene starts a stage (``scan`` or ``patches``) of ``rows`` rows."""

    def advance(self, rows: int) -> None:
        """``rows`` more rows of the current scene are done."""


@dataclass(frozen=True)
class PrepareConfig:
    """Options of ``autoenc prepare`` (see its ``--help``)."""

    input_kind: str = "auto"
    band: int | str | None = None
    calibration: str = "auto"  # auto | none | <constant A> | <calibration-*.xml>
    calibration_lut: str = "sigmaNought"
    noise_floor_db: float = DEFAULT_NOISE_FLOOR_DB
    db_window: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (0.1, 99.9)
    patch_size: int = 256
    stride: int | None = None
    min_valid: float = 0.9
    max_saturated: float = 0.5
    min_std_db: float = 0.5
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_file: str | None = None
    seed: int = 0
    shard_size: int = 128
    block_rows: int = 256
    block_cols: int = 4096
    resume: bool = True
    on_error: str = "stop"

    def __post_init__(self) -> None:
        if self.input_kind not in ("auto", *INPUT_KINDS):
            raise ValueError(
                f"input kind must be auto or one of {INPUT_KINDS}: {self.input_kind!r}"
            )
        if self.on_error not in ("stop", "skip"):
            raise ValueError(f"on_error must be 'stop' or 'skip', got {self.on_error!r}")
        if self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {self.patch_size}")
        if self.stride is not None and not 0 < self.stride:
            raise ValueError(f"stride must be positive, got {self.stride}")
        if self.shard_size < 1 or self.block_rows < 1 or self.block_cols < 1:
            raise ValueError("shard_size, block_rows and block_cols must be positive")
        PatchFilter(self.min_valid, self.max_saturated, self.min_std_db)  # validates


@dataclass
class PrepareReport:
    """What a run did; the CLI prints it as the summary table."""

    out: Path
    scenes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    window: tuple[float, float] | None = None
    window_info: dict[str, Any] = field(default_factory=dict)
    split_method: str = ""
    skipped: int = 0
    bytes_written: int = 0
    manifest: Path | None = None
    warnings: list[str] = field(default_factory=list)
    stale_removed: int = 0  # temp files of dead runs removed at the start


def _open(path: Path, cfg: PrepareConfig) -> tuple[SceneReader, BlockConverter, dict[str, Any]]:
    return open_input(
        path, cfg.band, cfg.input_kind, cfg.calibration, cfg.calibration_lut, cfg.noise_floor_db
    )


def _scan_key(info: dict[str, Any], cfg: PrepareConfig) -> dict[str, Any]:
    keys = ("source", "band", "input_kind", "calibration", "shape", "nodata")
    return {"v": STATE_VERSION, **{k: info[k] for k in keys}, "floor": cfg.noise_floor_db}


def _scene_ids(paths: Sequence[Path]) -> dict[str, Path]:
    ids: dict[str, Path] = {}
    for p in paths:
        sid = p.stem
        if sid in ids:
            raise ValueError(f"two scenes share the id {sid!r}: {ids[sid]} and {p} (rename one)")
        ids[sid] = p
    return ids


def _fail(report: PrepareReport, cfg: PrepareConfig, path: Path, stage: str, e: Exception) -> None:
    if cfg.on_error == "stop":
        raise e
    log.warning("skipping %s (%s): %s", path, stage, e)
    report.failures.append({"path": str(path), "stage": stage, "error": str(e)})


def _patch_key(
    info: dict[str, Any], cfg: PrepareConfig, window: tuple[float, float]
) -> dict[str, Any]:
    opts = ("patch_size", "stride", "min_valid", "max_saturated", "min_std_db", "shard_size")
    return {**_scan_key(info, cfg), "window": list(window), **{k: getattr(cfg, k) for k in opts}}


def _patch_one(
    folder: PrepareFolder,
    sid: str,
    path: Path,
    cfg: PrepareConfig,
    scan: ScanResult,
    window: tuple[float, float],
    progress: Progress | None,
    report: PrepareReport,
) -> dict[str, Any]:
    """Pass 2 for one scene, or its record from an earlier run when nothing changed."""
    out = folder.out
    rec_path = out / STATE_DIR / "scenes" / f"{sid}.json"
    reader, conv, info = _open(path, cfg)
    with reader:
        key = _patch_key(info, cfg, window)
        if cfg.resume and rec_path.is_file():
            rec = json.loads(rec_path.read_text())
            if rec.get("key") == key and folder.shards_intact(rec["record"]):
                report.skipped += 1
                if progress is not None:
                    progress.scene("cached", sid, reader.height)
                    progress.advance(reader.height)
                return dict(rec["record"])
        # From the first change on, the folder is not a complete dataset until the new manifest,
        # and this scene's record (if any) no longer describes its shards.
        folder.retract_manifest()
        folder.drop_record(rec_path)
        for sub in ("shards", "masks"):  # stale shards of an older or interrupted run
            for f in (out / sub).glob(f"{sid}_[0-9][0-9][0-9].npy"):
                f.unlink()
        if progress is not None:
            progress.scene("patches", sid, reader.height)
        res: SceneOutput = patch_scene(
            reader,
            conv,
            scan,
            window,
            out,
            sid,
            cfg.patch_size,
            cfg.stride,
            PatchFilter(cfg.min_valid, cfg.max_saturated, cfg.min_std_db),
            cfg.shard_size,
            cfg.block_cols,
            progress.advance if progress else None,
        )
    record = {
        **info,
        "pixels": {**scan.counts, "total": int(sum(scan.counts.values()))},
        "valid_fraction": round(scan.valid / max(1, sum(scan.counts.values())), 6),
        "patches": {
            "candidates": res.candidates,
            "accepted": res.accepted,
            "rejected": res.rejected,
        },
        "clip": clip_fractions(scan.hist, *window),
        "shards": res.shards,
    }
    report.bytes_written += sum(s["nbytes"] + s["mask_nbytes"] for s in res.shards)
    text = json.dumps({"key": key, "record": record}, indent=1)
    atomic_write(rec_path, lambda f: f.write(text.encode()))
    return record


def prepare(
    inputs: Sequence[str | Path],
    out: str | Path,
    cfg: PrepareConfig | None = None,
    progress: Progress | None = None,
    extra_source: dict[str, Any] | None = None,
) -> PrepareReport:
    """Build (or resume) a patch dataset from GeoTIFF scenes; see the module docstring.

    Raises:
        SceneError: an unreadable scene, with ``on_error="stop"`` (the message names it).
        ValueError / FileExistsError: bad options, duplicate scene ids, an unusable or busy
            output, an input kind the values cannot settle, an implausible dB window, or no
            patches where training needs them (then the folder holds no manifest).
    """
    cfg = cfg or PrepareConfig()
    out = Path(out)
    paths = _scene_ids(find_scenes([Path(p) for p in inputs]))
    if cfg.split_file:  # fail on a bad split file now, not after a long first pass
        read_split_file(Path(cfg.split_file), paths)
    check_calibration_used(cfg.calibration, paths.values(), lambda p: _open(p, cfg))
    with PrepareFolder(out) as folder:
        report = PrepareReport(out, stale_removed=len(folder.stale_removed))
        return _run(folder, paths, cfg, progress, extra_source, report)


def _scan_all(
    folder: PrepareFolder,
    paths: dict[str, Path],
    cfg: PrepareConfig,
    progress: Progress | None,
    report: PrepareReport,
) -> tuple[dict[str, ScanResult], dict[str, dict[str, Any]]]:
    """Pass 1: histograms and borders of every scene (cached unless ``--no-resume``)."""
    scans: dict[str, ScanResult] = {}
    infos: dict[str, dict[str, Any]] = {}
    for sid, path in paths.items():
        try:
            reader, conv, info = _open(path, cfg)
            with reader:
                small = too_small(sid, reader.height, reader.width, cfg.patch_size)
                if small:
                    log.warning("%s", small)
                    report.warnings.append(small)
                key = _scan_key(info, cfg)
                scan = folder.load_scan(sid, key) if cfg.resume else None
                if scan is not None and progress is not None:
                    progress.scene("cached", sid, reader.height)
                    progress.advance(reader.height)
                if scan is None:
                    if progress is not None:
                        progress.scene("scan", sid, reader.height)
                    scan = scan_scene(
                        reader,
                        conv,
                        cfg.block_rows,
                        cfg.block_cols,
                        progress.advance if progress else None,
                    )
                    folder.save_scan(sid, key, scan)
            scans[sid], infos[sid] = scan, info
        except (SceneError, ValueError, OSError) as e:
            _fail(report, cfg, path, "scan", e)
    if not scans:
        raise SceneError(
            "no scene could be read: " + "; ".join(f["error"] for f in report.failures)
        )
    return scans, infos


def _run(
    folder: PrepareFolder,
    paths: dict[str, Path],
    cfg: PrepareConfig,
    progress: Progress | None,
    extra_source: dict[str, Any] | None,
    report: PrepareReport,
) -> PrepareReport:
    out = folder.out
    scans, infos = _scan_all(folder, paths, cfg, progress, report)
    units = {i["units"] == "raw DN^2" for i in infos.values()}
    if len(units) > 1:
        raw = sorted(s for s, i in infos.items() if i["units"] == "raw DN^2")
        raise ValueError(
            f"scenes {', '.join(raw)} are uncalibrated DN^2 while others are calibrated; "
            "one window cannot serve both: pass --calibration or prepare them separately"
        )
    if cfg.split_file:
        splits = read_split_file(Path(cfg.split_file), {s: paths[s] for s in scans})
        report.split_method = f"explicit split file {cfg.split_file}"
    else:
        splits, report.split_method = split_scenes(list(scans), cfg.split, cfg.seed)
        if len(scans) < 3:
            report.split_method += f"; only {len(scans)} scene(s), so some splits are empty"
    train = [s for s in scans if splits[s] == "train"]
    vmin, vmax, winfo = choose_window(
        [scans[s].hist for s in train], cfg.percentiles, cfg.db_window
    )
    check_window(
        np.sum([scans[s].hist for s in train], axis=0) if train else None,
        vmin,
        vmax,
        {s: (infos[s]["input_kind"], infos[s]["input_kind_reason"]) for s in train},
    )
    report.window = (vmin, vmax)
    for split in SPLITS:
        hist = np.sum([scans[s].hist for s in scans if splits[s] == split], axis=0)
        if np.ndim(hist):
            winfo[f"{split}_clip"] = clip_fractions(hist, vmin, vmax)
    winfo["train_scenes"] = sorted(train)
    report.window_info = winfo
    if not cfg.resume:  # only now, with pass 1 and the window checks passed
        folder.clear_dataset()
    shards: list[dict[str, Any]] = []
    for sid in scans:  # pass 2: patches
        try:
            rec = _patch_one(
                folder, sid, paths[sid], cfg, scans[sid], (vmin, vmax), progress, report
            )
        except (SceneError, ValueError, OSError) as e:
            _fail(report, cfg, paths[sid], "patches", e)
            continue
        shards.extend(rec.pop("shards"))
        report.scenes[sid] = {
            "split": splits[sid],
            "num_patches": rec["patches"]["accepted"],
            **rec,
        }
    _remove_unlisted(folder, shards)
    try:
        empty = check_patches(report.scenes, cfg.patch_size)
    except ValueError:
        folder.retract_manifest()  # no manifest: the folder never reads as this dataset
        raise
    for w in empty:
        log.warning("%s", w)
    report.warnings.extend(empty)
    rejected = {
        r: sum(s["patches"]["rejected"][r] for s in report.scenes.values()) for r in REJECTIONS
    }
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "patch_size": cfg.patch_size,
        "storage_dtype": STORAGE_DTYPE,
        "value_encoding": VALUE_ENCODING,
        "mask_encoding": "masks/<shard>.npy: np.packbits(valid, axis=-1), 1 = valid pixel",
        "normalisation": Normalisation(vmin, vmax, cfg.noise_floor_db).to_dict(),
        "window": winfo,
        "source": {"tool": "autoenc prepare", "options": _options(cfg), **(extra_source or {})},
        "scenes": report.scenes,
        "shards": shards,
        "split_method": report.split_method,
        "rejections": rejected,
        "failures": report.failures,
        "warnings": report.warnings,
    }
    report.manifest = write_manifest(out, manifest)
    return report


def _options(cfg: PrepareConfig) -> dict[str, Any]:
    d = asdict(cfg)
    for k in ("db_window", "percentiles", "split"):
        d[k] = list(d[k]) if d[k] is not None else None
    return d


def _remove_unlisted(folder: PrepareFolder, shards: list[dict[str, Any]]) -> None:
    """Delete shard/mask files of scenes no longer in the dataset (manifest retracted first)."""
    out = folder.out
    keep = {s["file"] for s in shards} | {s["mask_file"] for s in shards}
    for sub in ("shards", "masks"):
        for f in (out / sub).glob("*.npy") if (out / sub).is_dir() else ():
            if f"{sub}/{f.name}" not in keep:
                folder.retract_manifest()
                f.unlink()
