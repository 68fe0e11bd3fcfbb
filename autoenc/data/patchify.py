# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Second pass of ``autoenc prepare``: cut one scene into filtered uint16 patch shards.

The scene is read one patch row at a time (``patch_size`` rows, column chunks of about
``block_cols``), so memory stays O(patch_size x block_cols + shard) for any scene size. Each
accepted patch is stored with a bit-packed validity mask; invalid pixels are filled with the
mean of the patch's valid codes (a flat fill costs a codec almost nothing and hides no edge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.dataset_format import file_sha256, write_npy, write_shard
from autoenc.data.scan import ScanResult
from autoenc.sar.geotiff import SceneReader
from autoenc.sar.normalisation import CODE_MAX, Normalisation
from autoenc.sar.radiometry import VALID, BlockConverter

REJECTIONS: tuple[str, ...] = ("invalid", "saturated", "flat")


@dataclass(frozen=True)
class PatchFilter:
    """Quality filter for candidate patches (checked in this order)."""

    min_valid: float = 0.9  # share of valid pixels
    max_saturated: float = 0.5  # share of valid pixels at either end of the window
    min_std_db: float = 0.5  # std of the windowed dB values of valid pixels

    def __post_init__(self) -> None:
        for name in ("min_valid", "max_saturated"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.min_std_db < 0:
            raise ValueError(f"min_std_db must be >= 0, got {self.min_std_db}")


@dataclass
class SceneOutput:
    """Shards of one scene and its patch counts."""

    shards: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTIONS, 0))


def _codes(db: NDArray[np.float32], vmin: float, vmax: float) -> NDArray[np.uint16]:
    """DB -> uint16 code of the unit window (:meth:`Normalisation.to_codes`)."""
    return Normalisation(vmin, vmax).to_codes(db)


def code_table(conv: BlockConverter, vmin: float, vmax: float) -> NDArray[np.uint16] | None:
    """DN -> code for 16-bit DN with a constant calibration; ``None`` when not applicable."""
    if conv.kind != "amplitude" or conv.calibration.lut is not None:
        return None
    dn = np.arange(1 << 16, dtype=np.uint16)[None, :]
    return _codes(conv.to_db(dn, 0, 0), vmin, vmax)[0]


class ShardWriter:
    """Buffer accepted patches and flush them as ``<scene>_<k>.npy`` shards plus masks."""

    def __init__(self, root: Path, scene_id: str, shard_size: int, out: SceneOutput) -> None:
        """Write under ``root/shards`` and ``root/masks``; entries go to ``out.shards``."""
        self.root, self.scene_id, self.shard_size, self.out = root, scene_id, shard_size, out
        self._codes: list[NDArray[np.uint16]] = []
        self._masks: list[NDArray[np.uint8]] = []
        self._origins: list[list[int]] = []

    def add(
        self, codes: NDArray[np.uint16], masks: NDArray[np.uint8], origins: list[list[int]]
    ) -> None:
        """Queue (n, P, P) codes, (n, P, ceil(P/8)) packed masks and their [row, col] origins."""
        self._codes.extend(codes)
        self._masks.extend(masks)
        self._origins.extend(origins)
        while len(self._codes) >= self.shard_size:
            self._flush(self.shard_size)

    def close(self) -> None:
        """Flush the remainder."""
        if self._codes:
            self._flush(len(self._codes))

    def _flush(self, n: int) -> None:
        k = len(self.out.shards)
        name = f"{self.scene_id}_{k:03d}.npy"
        codes = np.stack(self._codes[:n])[:, None]  # (n, 1, P, P)
        masks = np.stack(self._masks[:n])[:, None]  # (n, 1, P, ceil(P/8))
        origins = self._origins[:n]
        del self._codes[:n], self._masks[:n], self._origins[:n]
        entry = write_shard(self.root, f"shards/{name}", codes)
        mask_path = write_npy(self.root / "masks" / name, masks)
        entry.update(
            scene_id=self.scene_id,
            mask_file=f"masks/{name}",
            mask_nbytes=mask_path.stat().st_size,
            mask_sha256=file_sha256(mask_path),
            origins=origins,  # [row, col] of each patch's top-left pixel in the scene
        )
        self.out.shards.append(entry)


def patch_scene(
    reader: SceneReader,
    conv: BlockConverter,
    scan: ScanResult,
    window: tuple[float, float],
    root: Path,
    scene_id: str,
    patch_size: int = 256,
    stride: int | None = None,
    quality: PatchFilter | None = None,
    shard_size: int = 128,
    block_cols: int = 4096,
    advance: Callable[[int], None] | None = None,
) -> SceneOutput:
    """Cut, filter and store the patches of one scene (partial edge patches are dropped).

    ``advance(rows)`` is called after each patch row.
    """
    p = int(patch_size)
    s = int(stride or patch_size)
    quality = quality or PatchFilter()
    vmin, vmax = window
    h, w = reader.height, reader.width
    out = SceneOutput()
    writer = ShardWriter(root, scene_id, shard_size, out)
    if h < p or w < p:
        return out
    ny, nx = (h - p) // s + 1, (w - p) // s + 1
    per_chunk = max(1, (max(block_cols, p) - p) // s + 1)  # patches per column chunk
    table = code_table(conv, vmin, vmax) if reader.dtype in (np.uint8, np.uint16) else None
    std_scale = (vmax - vmin) / CODE_MAX
    for iy in range(ny):
        y = iy * s
        for j0 in range(0, nx, per_chunk):
            n = min(per_chunk, nx - j0)
            x, cw = j0 * s, (n - 1) * s + p
            raw = reader.read(y, x, p, cw)
            valid = conv.reasons(raw, scan.first[y : y + p], scan.last[y : y + p], x) == VALID
            codes = table[raw] if table is not None else _codes(conv.to_db(raw, y, x), vmin, vmax)
            # (p, cw) -> (n, p, p): the n patches of this chunk, side by side.
            cp = np.lib.stride_tricks.sliding_window_view(codes, (p, p))[0, ::s][:n]
            vp = np.lib.stride_tricks.sliding_window_view(valid, (p, p))[0, ::s][:n]
            origins = [[y, (j0 + k) * s] for k in range(n)]
            _filter_and_store(cp, vp, origins, quality, std_scale, writer, out)
        if advance is not None:
            advance(s if iy < ny - 1 else h - y)
    writer.close()
    return out


def _filter_and_store(
    cp: NDArray[np.uint16],
    vp: NDArray[np.bool_],
    origins: list[list[int]],
    quality: PatchFilter,
    std_scale: float,
    writer: ShardWriter,
    out: SceneOutput,
) -> None:
    """Apply the quality filter to (n, P, P) patches and queue the accepted ones."""
    n, p, _ = cp.shape
    nvalid = vp.sum(axis=(1, 2))
    u = cp.astype(np.float64) * vp  # invalid pixels contribute nothing to the moments
    s1 = u.sum(axis=(1, 2))
    s2 = np.einsum("nij,nij->n", u, u)
    saturated = (vp & ((cp == 0) | (cp == np.uint16(CODE_MAX)))).sum(axis=(1, 2))
    safe = np.maximum(nvalid, 1)
    mean = s1 / safe
    std_db = np.sqrt(np.maximum(s2 / safe - mean**2, 0.0)) * std_scale
    bad_valid = nvalid < quality.min_valid * p * p
    bad_sat = ~bad_valid & (saturated > quality.max_saturated * safe)
    bad_flat = ~bad_valid & ~bad_sat & (std_db < quality.min_std_db)
    out.candidates += n
    out.rejected["invalid"] += int(bad_valid.sum())
    out.rejected["saturated"] += int(bad_sat.sum())
    out.rejected["flat"] += int(bad_flat.sum())
    keep = np.flatnonzero(~(bad_valid | bad_sat | bad_flat))
    if keep.size == 0:
        return
    codes = cp[keep].copy()
    masks = vp[keep]
    fill = np.rint(mean[keep]).astype(np.uint16)
    codes[~masks] = np.repeat(fill, (~masks).sum(axis=(1, 2)))
    out.accepted += int(keep.size)
    writer.add(codes, np.packbits(masks, axis=-1), [origins[k] for k in keep])
