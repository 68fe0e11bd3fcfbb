# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Memory-mapped patch dataset over ``.npy`` shards.

Shards are opened lazily with ``np.load(mmap_mode="r")`` inside each worker process and cached
there; the cache is dropped when the dataset is pickled for a worker, so no file handle or
mapping ever crosses a process boundary. Patch lookup is a binary search over cumulative counts.

Items stay 16-bit codes (``torch.uint16``) all the way to the device: a worker then only copies
the stored bytes, pinned host-to-device transfers move half the bytes of float32, and
:func:`decode` (``PatchDataModule.on_after_batch_transfer``) turns them into [0, 1] floats there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from autoenc.sar.normalisation import CODE_MAX, unit_from_codes

UINT16_SCALE = CODE_MAX  # codes are rint(unit * UINT16_SCALE) (autoenc.sar.normalisation)


def decode(codes: Tensor) -> Tensor:
    """uint16 codes -> float32 in [0, 1] (``q / 65535``), on whatever device ``codes`` live.

    :func:`autoenc.sar.normalisation.unit_from_codes` of a tensor: the one code -> unit map.
    """
    return unit_from_codes(codes)


def d4_transform(x: Tensor, k: int, flip: bool) -> Tensor:
    """Apply one element of the dihedral group D4 (``k`` quarter turns, then an optional flip).

    Args:
        x: (C, H, W) patch, any dtype (uint16 is permuted through a same-size int16 view,
            since torch has no uint16 flip kernel; values are untouched).
        k: number of 90° rotations, 0..3.
        flip: mirror the last axis after rotating.
    """
    view = x.view(torch.int16) if x.dtype == torch.uint16 else x
    view = torch.rot90(view, k, dims=(-2, -1))
    if flip:
        view = torch.flip(view, dims=(-1,))
    return view.view(torch.uint16) if x.dtype == torch.uint16 else view


class PatchDataset(Dataset[dict[str, Any]]):
    """Patches of a subset of shards as stored: uint16 codes of the [0, 1] dB window.

    Each item is ``{"image": (1, h, w) torch.uint16, "index": int, "scene_id": str}``; ``index``
    is the position within this dataset, so prediction writers can map outputs back to patches.
    Use :func:`decode` (or :meth:`image`) for float32 values.
    """

    def __init__(
        self,
        root: str | Path,
        shards: Sequence[dict[str, Any]],
        crop_size: int | None = None,
        augment: bool = False,
    ) -> None:
        """Index ``shards`` (manifest entries) below ``root``.

        Args:
            root: dataset directory holding ``manifest.json``.
            shards: manifest shard entries (``file``, ``scene_id``, ``num_patches``, ``shape``).
            crop_size: random crop side (train-time speed-up); ``None`` keeps whole patches.
            augment: random D4 (flips and 90° rotations) per item.
        """
        self.root = Path(root)
        self.shards = list(shards)
        counts = np.array([int(s["num_patches"]) for s in self.shards], dtype=np.int64)
        # starts[i] = index of the first patch of shard i; ends[i] = one past its last.
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        self.crop_size = crop_size
        self.augment = augment
        if crop_size is not None and crop_size <= 0:
            raise ValueError(f"crop_size={crop_size} must be positive")
        if crop_size is not None and self.shards:  # no shards: empty, and len() says so
            patch = int(self.shards[0]["shape"][-1])
            if crop_size > patch:
                raise ValueError(f"crop_size={crop_size} must be in 1..{patch} (the patch size)")
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getstate__(self) -> dict[str, Any]:
        # Never pickle open memory maps into worker processes.
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def locate(self, index: int) -> tuple[int, int]:
        """Return ``(shard, offset)`` of a dataset index in O(log n)."""
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range 0..{len(self) - 1}")
        shard = int(np.searchsorted(self.ends, index, side="right"))
        return shard, index - int(self.starts[shard])

    def scene_of(self, index: int) -> str:
        """Scene id of a dataset index."""
        return str(self.shards[self.locate(index)[0]]["scene_id"])

    def _array(self, shard: int) -> np.ndarray:
        arr = self._cache.get(shard)
        if arr is None:
            arr = np.load(self.root / self.shards[shard]["file"], mmap_mode="r")
            self._cache[shard] = arr
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, offset = self.locate(index)
        x = torch.from_numpy(np.array(self._array(shard)[offset]))  # (1, P, P) uint16, a copy
        if self.crop_size is not None and self.crop_size < x.shape[-1]:
            h, w = x.shape[-2:]
            top = int(torch.randint(0, h - self.crop_size + 1, ()).item())
            left = int(torch.randint(0, w - self.crop_size + 1, ()).item())
            x = x[:, top : top + self.crop_size, left : left + self.crop_size]
        if self.augment:
            k = int(torch.randint(0, 4, ()).item())
            flip = bool(torch.randint(0, 2, ()).item())
            x = d4_transform(x, k, flip)
        return {
            "image": x.contiguous(),  # uint16 codes; decoded on the device
            "index": index,
            "scene_id": str(self.shards[shard]["scene_id"]),
        }

    @property
    def has_masks(self) -> bool:
        """True when every shard has a validity mask (datasets from ``autoenc prepare``)."""
        return bool(self.shards) and all("mask_file" in s for s in self.shards)

    def mask(self, index: int) -> Tensor:
        """(1, P, P) bool validity of a whole stored patch (True = valid pixel).

        Datasets without masks (older synthetic ones) are all valid. Ignores crop/augment.
        """
        shard, offset = self.locate(index)
        entry = self.shards[shard]
        p = int(entry["shape"][-1])
        if "mask_file" not in entry:
            return torch.ones((1, p, p), dtype=torch.bool)
        key = -1 - shard  # masks share the cache with negative keys
        arr = self._cache.get(key)
        if arr is None:
            arr = np.load(self.root / entry["mask_file"], mmap_mode="r")
            self._cache[key] = arr
        bits = np.unpackbits(np.asarray(arr[offset]), axis=-1, count=p)  # (1, P, P) uint8
        return torch.from_numpy(bits.astype(bool))

    @property
    def has_truth(self) -> bool:
        """True when every shard has clean-truth patches (synthetic data; real data has none)."""
        return bool(self.shards) and all("truth_file" in s for s in self.shards)

    def truth(self, index: int) -> Tensor | None:
        """(1, P, P) uint16 codes of the noise-free reflectivity of a whole stored patch.

        Same window and encoding as the image (see the manifest's ``truth`` record); ``None``
        when the shard has no truth. Ignores crop/augment.
        """
        shard, offset = self.locate(index)
        entry = self.shards[shard]
        if "truth_file" not in entry:
            return None
        key = -(1 << 30) - shard  # truth shares the cache with its own negative keys
        arr = self._cache.get(key)
        if arr is None:
            arr = np.load(self.root / entry["truth_file"], mmap_mode="r")
            self._cache[key] = arr
        return torch.from_numpy(np.array(arr[offset]))

    def image(self, index: int) -> Tensor:
        """Decoded (1, h, w) float32 patch in [0, 1] (with this dataset's crop/augmentation)."""
        return decode(self[index]["image"])
