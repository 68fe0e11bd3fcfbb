# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""On-disk patch dataset: a directory of per-scene uint16 ``.npy`` shards.

The manifest is written last, so a directory with a valid manifest is a
complete dataset; shard sizes and hashes let loaders detect truncation or
corruption before training on it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.atomic import write_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
STORAGE_DTYPE = "uint16"
VALUE_ENCODING = "unit = q / 65535 (uint16 over [0,1] of the normalised dB window)"
SPLITS: tuple[str, ...] = ("train", "val", "test")
REQUIRED_KEYS: tuple[str, ...] = (
    "format_version",
    "patch_size",
    "storage_dtype",
    "normalisation",
    "scenes",
    "shards",
)
_SHARD_KEYS: tuple[str, ...] = ("file", "scene_id", "num_patches", "shape", "nbytes", "sha256")
_CHUNK = 1 << 20


def atomic_write(path: Path, write: Any) -> None:
    """Write via ``write(fileobj)`` into a temp file next to ``path``, then rename.

    :func:`autoenc.atomic.write_file`: fsynced, mode 0644 (datasets are meant to be shared).
    """
    write_file(path, write)


def file_sha256(path: Path) -> str:
    """Hash a file in chunks so large shards are never fully in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_npy(path: Path, array: NDArray[Any]) -> Path:
    """Atomically save any array as ``.npy`` (no pickle), e.g. latents next to a shard."""
    a = np.ascontiguousarray(array)
    atomic_write(path, lambda f: np.lib.format.write_array(f, a, allow_pickle=False))
    return path


def write_shard(root: Path, rel_path: str, array: NDArray[np.uint16]) -> dict[str, Any]:
    """Atomically save a (N, 1, P, P) uint16 shard and describe it for the manifest.

    The returned dict lacks ``scene_id``; the caller adds it.
    """
    a = np.asarray(array)
    if a.ndim != 4 or a.shape[1] != 1 or a.shape[2] != a.shape[3]:
        raise ValueError(f"shard {rel_path!r}: expected shape (N, 1, P, P), got {a.shape}")
    if a.dtype != np.uint16:
        raise ValueError(f"shard {rel_path!r}: expected dtype uint16, got {a.dtype}")
    path = write_npy(Path(root) / rel_path, a)
    return {
        "file": Path(rel_path).as_posix(),
        "num_patches": int(a.shape[0]),
        "shape": [int(s) for s in a.shape],
        "nbytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Atomically write ``manifest.json``; call it after every shard is on disk."""
    path = Path(root) / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def read_manifest(root: Path) -> dict[str, Any]:
    """Load and sanity-check a dataset manifest, with errors naming the file."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"dataset manifest not found: {path}")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"dataset manifest {path} is not valid JSON: {e}") from e
    if not isinstance(m, dict):
        raise ValueError(f"dataset manifest {path} must hold a JSON object, got {type(m).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in m]
    if missing:
        raise ValueError(f"dataset manifest {path} lacks keys: {', '.join(missing)}")
    if m["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"dataset manifest {path} has format_version {m['format_version']!r}; "
            f"this version of autoenc reads {FORMAT_VERSION}"
        )
    if m["storage_dtype"] != STORAGE_DTYPE:
        raise ValueError(
            f"dataset manifest {path} has unsupported storage_dtype {m['storage_dtype']!r}"
        )
    for i, s in enumerate(m["shards"]):
        miss = [k for k in _SHARD_KEYS if k not in s]
        if miss:
            raise ValueError(f"dataset manifest {path}: shard #{i} lacks keys: {', '.join(miss)}")
        if s["scene_id"] not in m["scenes"]:
            raise ValueError(
                f"dataset manifest {path}: shard {s['file']} names unknown scene {s['scene_id']!r}"
            )
    for sid, info in m["scenes"].items():
        if info.get("split") not in SPLITS:
            raise ValueError(
                f"dataset manifest {path}: scene {sid!r} has bad split {info.get('split')!r}"
            )
    return m


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """Return (shape, dtype, fortran_order, header_length) without loading data."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as e:
            raise ValueError(f"shard {path} has a bad .npy header: {e}") from e
        return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran), f.tell()


def validate_shards(root: Path, manifest: dict[str, Any], check_hash: bool = False) -> None:
    """Check every shard exists, is complete and has the declared shape/dtype.

    Raises:
        FileNotFoundError: a shard file is missing (the message names it).
        ValueError: a shard is truncated, resized, mis-shaped or (with
            ``check_hash``) has a different SHA-256.
    """
    root = Path(root)
    p = int(manifest["patch_size"])
    for s in manifest["shards"]:
        path = root / s["file"]
        if not path.is_file():
            raise FileNotFoundError(f"shard file missing: {path}")
        size = path.stat().st_size
        if size != int(s["nbytes"]):
            raise ValueError(
                f"shard {path} is {size} bytes, manifest says {s['nbytes']} (truncated or replaced)"
            )
        shape, dtype, fortran, offset = read_npy_header(path)
        want = (int(s["num_patches"]), 1, p, p)
        if shape != want or list(shape) != [int(x) for x in s["shape"]]:
            raise ValueError(f"shard {path} has shape {shape}, expected {want}")
        if dtype != np.dtype(STORAGE_DTYPE) or fortran:
            raise ValueError(
                f"shard {path} has dtype {dtype} (fortran={fortran}), "
                f"expected C-order {STORAGE_DTYPE}"
            )
        need = offset + int(np.prod(shape)) * dtype.itemsize
        if size < need:
            raise ValueError(f"shard {path} is truncated: {size} bytes, header needs {need}")
        if check_hash:
            digest = file_sha256(path)
            if digest != s["sha256"]:
                raise ValueError(
                    f"shard {path} sha256 {digest} does not match manifest {s['sha256']}"
                )
        if "mask_file" in s:
            mask_shape = (int(s["num_patches"]), 1, p, (p + 7) // 8)
            _validate_companion(root, s, "mask", mask_shape, np.dtype(np.uint8), check_hash)
        if "truth_file" in s:  # synthetic data: the clean reflectivity, coded like the shard
            _validate_companion(root, s, "truth", want, np.dtype(STORAGE_DTYPE), check_hash)
    log.debug("validated %d shards under %s", len(manifest["shards"]), root)


def _validate_companion(
    root: Path,
    s: dict[str, Any],
    what: str,
    want: tuple[int, ...],
    dtype: np.dtype,
    check_hash: bool,
) -> None:
    """Check a per-shard companion array (``mask`` or ``truth``) like the shard itself.

    The entry holds ``<what>_file``, ``<what>_nbytes`` and ``<what>_sha256``.
    """
    path = root / s[f"{what}_file"]
    if not path.is_file():
        raise FileNotFoundError(f"{what} file missing: {path}")
    size = path.stat().st_size
    if size != int(s[f"{what}_nbytes"]):
        raise ValueError(f"{what} {path} is {size} bytes, manifest says {s[f'{what}_nbytes']}")
    shape, got, fortran, offset = read_npy_header(path)
    if shape != want or got != dtype or fortran:
        raise ValueError(f"{what} {path} has shape {shape} dtype {got}, expected {want} {dtype}")
    if size < offset + int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{what} {path} is truncated: {size} bytes")
    if check_hash and file_sha256(path) != s[f"{what}_sha256"]:
        raise ValueError(f"{what} {path} sha256 does not match the manifest")


def split_scenes(
    scene_ids: Sequence[str],
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[dict[str, str], str]:
    """Assign whole scenes to train/val/test so patches never leak across splits.

    Deterministic for a given seed and set of ids (ids are sorted first).
    With at least three scenes every split gets at least one.

    Returns:
        (mapping scene id -> split name, human-readable description of the method).
    """
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(
            "split ratios must be three non-negative numbers with positive sum, "
            f"got {tuple(ratios)}"
        )
    ids = sorted(set(scene_ids))
    if len(ids) != len(scene_ids):
        raise ValueError("scene ids must be unique")
    n = len(ids)
    r = np.asarray(ratios, dtype=np.float64) / float(sum(ratios))
    counts = np.floor(r * n).astype(int)
    # Hand leftovers to the splits with the largest fractional parts.
    for k in np.argsort(-(r * n - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    if n >= 3:
        for k in range(3):
            while counts[k] == 0:
                donor = int(np.argmax(counts))
                counts[donor] -= 1
                counts[k] += 1
    order = np.random.default_rng(seed).permutation(n)
    out: dict[str, str] = {}
    start = 0
    for name, c in zip(SPLITS, counts, strict=True):
        for j in order[start : start + c]:
            out[ids[j]] = name
        start += c
    desc = (
        f"seeded shuffle (numpy default_rng seed={seed}) of {n} sorted scene ids, "
        f"{counts[0]}/{counts[1]}/{counts[2]} train/val/test by ratios "
        f"{'/'.join(f'{x:g}' for x in ratios)}"
    )
    return out, desc
