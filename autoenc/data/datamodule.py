# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""LightningDataModule over a patch dataset directory, split by scene from its manifest."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader
from typing_extensions import override

from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.patches import PatchDataset, decode

log = logging.getLogger(__name__)

DEFAULT_ROOT = "data/synthetic"
Split = Literal["train", "val", "test"]


class PatchDataModule(LightningDataModule):
    """Scene-disjoint train/val/test loaders over memory-mapped uint16 patch shards.

    The split of every scene comes from ``manifest.json``; a scene therefore never appears in
    two splits. When ``root`` is the default ``data/synthetic`` and does not exist, the embedded
    synthetic Sentinel-1-like dataset is generated there once (rank 0); any other missing root is
    an error, never a silent generation.
    """

    def __init__(
        self,
        root: str = DEFAULT_ROOT,
        batch_size: int = 16,
        num_workers: int = 2,
        crop_size: int | None = None,
        augment: bool = True,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        predict_split: Split = "test",
        verify_checksums: bool = False,
    ) -> None:
        """Configure the loaders.

        Args:
            root: dataset directory (``manifest.json`` + shards).
            batch_size: patches per batch (per device).
            num_workers: DataLoader worker processes.
            crop_size: random train crop side, a multiple of 16, for cheap runs; ``None`` = whole
                patches. Validation and test always use whole patches.
            augment: D4 flips/rotations on the training split only.
            pin_memory: pin host memory; ``None`` = only when training on CUDA.
            persistent_workers: keep workers alive between epochs (ignored with 0 workers).
            predict_split: split that ``autoenc predict`` reconstructs.
            verify_checksums: also hash every shard at setup (slow on big datasets).
        """
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if crop_size is not None and (crop_size <= 0 or crop_size % 16):
            raise ValueError(f"crop_size={crop_size} must be a positive multiple of 16")
        self.save_hyperparameters()
        self.root = Path(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.crop_size = crop_size
        self.augment = augment
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.predict_split = predict_split
        self.verify_checksums = verify_checksums
        self.manifest: dict[str, Any] = {}
        self.datasets: dict[str, PatchDataset] = {}

    def _is_default_root(self) -> bool:
        return self.root.resolve() == Path(DEFAULT_ROOT).resolve()

    def prepare_data(self) -> None:
        """Generate the default synthetic dataset if it is missing (called on rank 0 only)."""
        if (self.root / "manifest.json").exists():
            return
        if not self._is_default_root():
            raise FileNotFoundError(
                f"dataset root {str(self.root)!r} has no manifest.json; create it with "
                "`autoenc synth --out DIR` (or `autoenc prepare`) or point --data.root at one"
            )
        from autoenc.data.synth_dataset import make_synthetic_dataset

        log.warning("no dataset at %s: generating the synthetic Sentinel-1-like default", self.root)
        make_synthetic_dataset(self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest, validate every shard against it and build the split datasets."""
        if self.datasets:
            return
        if not (self.root / "manifest.json").exists():
            raise FileNotFoundError(f"dataset root {str(self.root)!r} has no manifest.json")
        self.manifest = read_manifest(self.root)
        validate_shards(self.root, self.manifest, check_hash=self.verify_checksums)
        scenes = self.manifest["scenes"]
        patch = int(self.manifest["patch_size"])
        if self.crop_size is not None and self.crop_size > patch:
            raise ValueError(
                f"crop_size={self.crop_size} exceeds the patch size {patch} of dataset "
                f"{str(self.root)!r}"
            )
        by_split: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
        for shard in self.manifest["shards"]:
            split = scenes[shard["scene_id"]]["split"]
            if split not in by_split:
                raise ValueError(f"scene {shard['scene_id']!r} has unknown split {split!r}")
            by_split[split].append(shard)
        for split, shards in by_split.items():
            train = split == "train"
            self.datasets[split] = PatchDataset(
                self.root,
                shards,
                crop_size=self.crop_size if train else None,
                augment=self.augment and train,
            )

    def scene_ids(self, split: Split) -> set[str]:
        """Scene ids of one split (after :meth:`setup`)."""
        return {str(s["scene_id"]) for s in self.datasets[split].shards}

    def _loader(self, split: str, shuffle: bool) -> DataLoader[dict[str, Any]]:
        dataset = self.datasets[split]
        if len(dataset) == 0:
            ids = sorted(s for s, v in self.manifest["scenes"].items() if v["split"] == split)
            held = f"its scene(s) {', '.join(ids[:5])} yield none" if ids else "no scene in it"
            raise ValueError(
                f"split {split!r} of dataset {str(self.root)!r} has no patches ({held}), and "
                "this stage needs them: prepare more or larger scenes, or a smaller --patch-size"
            )
        pin = self.pin_memory
        if pin is None:
            if self.trainer is not None:
                pin = isinstance(self.trainer.accelerator, CUDAAccelerator)
            else:
                pin = torch.cuda.is_available()
        # Keyword arguments only: prediction writers re-instantiate loaders from their kwargs.
        return DataLoader(
            dataset=dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=pin,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=False,
        )

    @override
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Decode the uint16 codes to float32 [0, 1] on the device they were moved to."""
        batch["image"] = decode(batch["image"])
        return batch

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Shuffled, augmented (D4), optionally cropped training patches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole validation patches in a fixed order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole test patches in a fixed order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Whole patches of ``predict_split`` in manifest order."""
        return self._loader(self.predict_split, shuffle=False)
