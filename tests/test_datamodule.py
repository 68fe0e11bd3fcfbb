# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Tests of the memory-mapped patch dataset and the scene-split LightningDataModule."""

from __future__ import annotations

import itertools
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import autoenc.data.synth_dataset as synth_dataset
from autoenc.data.datamodule import PatchDataModule
from autoenc.data.dataset_format import read_manifest, write_shard
from autoenc.data.patches import UINT16_SCALE, PatchDataset, d4_transform, decode

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- helpers


def _expected(stored: np.ndarray) -> torch.Tensor:
    """Decode a stored (1, P, P) uint16 patch the way the dataset promises to."""
    return torch.from_numpy(np.asarray(stored, dtype=np.float32)) / UINT16_SCALE


def _stored_patch(root: Path, shard: dict[str, Any], offset: int) -> np.ndarray:
    return np.load(root / shard["file"])[offset]


def _d4_variants(x: torch.Tensor) -> list[torch.Tensor]:
    return [d4_transform(x, k, flip) for k in range(4) for flip in (False, True)]


def _find_subwindow(big: torch.Tensor, small: torch.Tensor) -> tuple[int, int] | None:
    """Position of ``small`` (1, c, c) inside ``big`` (1, P, P), or None."""
    c = small.shape[-1]
    p = big.shape[-1]
    for top in range(p - c + 1):
        for left in range(p - c + 1):
            if torch.equal(big[:, top : top + c, left : left + c], small):
                return top, left
    return None


@pytest.fixture
def uneven_root(tmp_path: Path) -> tuple[Path, list[dict[str, Any]], list[np.ndarray]]:
    """Hand-written shards of 3, 1 and 5 patches (8x8), with distinct random contents."""
    rng = np.random.default_rng(123)
    shards: list[dict[str, Any]] = []
    arrays: list[np.ndarray] = []
    for i, n in enumerate((3, 1, 5)):
        a = rng.integers(0, 65536, size=(n, 1, 8, 8), dtype=np.uint16)
        entry = write_shard(tmp_path, f"shards/s{i}.npy", a)
        entry["scene_id"] = f"scene{i}"
        shards.append(entry)
        arrays.append(a)
    return tmp_path, shards, arrays


@pytest.fixture
def root_copy(tiny_root: Path, tmp_path: Path) -> Path:
    """A private, corruptible copy of the session's tiny dataset."""
    dst = tmp_path / "tiny"
    shutil.copytree(tiny_root, dst)
    return dst


def _dm(root: Path, **kw: Any) -> PatchDataModule:
    kw.setdefault("num_workers", 0)
    kw.setdefault("batch_size", 2)
    kw.setdefault("pin_memory", False)
    return PatchDataModule(root=str(root), **kw)


# ----------------------------------------------------------------------------- shard lookup


def test_locate_matches_linear_scan(uneven_root: Any) -> None:
    root, shards, arrays = uneven_root
    ds = PatchDataset(root, shards)
    assert len(ds) == 9
    brute = [(s, o) for s, a in enumerate(arrays) for o in range(a.shape[0])]
    assert len(brute) == len(ds)
    for i, want in enumerate(brute):
        assert ds.locate(i) == want, i
        assert ds.scene_of(i) == f"scene{want[0]}"


def test_locate_skips_empty_shards(tmp_path: Path) -> None:
    # Shards with zero patches must never be returned by the binary search.
    shards = [
        {"file": f"s{i}.npy", "scene_id": f"s{i}", "num_patches": n, "shape": [n, 1, 4, 4]}
        for i, n in enumerate((0, 2, 0, 0, 3, 0))
    ]
    ds = PatchDataset(tmp_path, shards)
    brute = [(s, o) for s, sh in enumerate(shards) for o in range(sh["num_patches"])]
    assert [ds.locate(i) for i in range(len(ds))] == brute


def test_items_equal_stored_values(uneven_root: Any) -> None:
    root, shards, arrays = uneven_root
    ds = PatchDataset(root, shards)
    i = 0
    for s, a in enumerate(arrays):
        for o in range(a.shape[0]):
            item = ds[i]
            assert item["index"] == i
            assert item["scene_id"] == f"scene{s}"
            assert item["image"].dtype == torch.uint16  # codes travel undecoded
            img = decode(item["image"])
            assert img.dtype == torch.float32 and img.shape == (1, 8, 8)
            assert torch.equal(img, _expected(a[o]))
            # And it decodes back to the exact stored integers.
            assert np.array_equal(np.rint(img.numpy() * UINT16_SCALE).astype(np.uint16), a[o])
            i += 1


@pytest.mark.parametrize("index", [-1, 9, 100])
def test_out_of_range_index_raises(uneven_root: Any, index: int) -> None:
    root, shards, _ = uneven_root
    ds = PatchDataset(root, shards)
    with pytest.raises(IndexError):
        ds.locate(index)
    with pytest.raises(IndexError):
        ds[index]


def test_empty_dataset(tmp_path: Path) -> None:
    ds = PatchDataset(tmp_path, [])
    assert len(ds) == 0
    with pytest.raises(IndexError):
        ds.locate(0)


# ----------------------------------------------------------------------------- splits


def test_splits_are_scene_disjoint_and_complete(tiny_root: Path) -> None:
    dm = _dm(tiny_root)
    dm.prepare_data()
    dm.setup("fit")
    manifest = read_manifest(tiny_root)
    scenes = manifest["scenes"]
    ids = {split: dm.scene_ids(split) for split in SPLITS}  # type: ignore[arg-type]
    for a, b in itertools.combinations(SPLITS, 2):
        assert ids[a].isdisjoint(ids[b]), (a, b)
    assert set().union(*ids.values()) == set(scenes)
    assert all(ids[s] for s in SPLITS), ids  # 6 scenes -> every split gets one
    for split in SPLITS:
        assert ids[split] == {sid for sid, info in scenes.items() if info["split"] == split}
        ds = dm.datasets[split]
        for i in range(len(ds)):
            sid = ds[i]["scene_id"]
            assert scenes[sid]["split"] == split
            assert ds.scene_of(i) == sid
    total = sum(len(dm.datasets[s]) for s in SPLITS)
    assert total == sum(int(s["num_patches"]) for s in manifest["shards"]) == 6 * 4


# ----------------------------------------------------------------------------- augmentation


def test_d4_elements_distinct_and_value_preserving() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 5, 5, generator=g)
    variants = _d4_variants(x)
    assert len(variants) == 8
    for a, b in itertools.combinations(range(8), 2):
        assert not torch.equal(variants[a], variants[b]), (a, b)
    ref = torch.sort(x.flatten()).values
    for v in variants:
        assert v.shape == x.shape
        assert torch.equal(torch.sort(v.flatten()).values, ref)
    assert torch.equal(d4_transform(x, 0, False), x)
    # Rotation then flip, as documented.
    assert torch.equal(
        d4_transform(x, 1, True), torch.flip(torch.rot90(x, 1, dims=(-2, -1)), dims=(-1,))
    )


def _stored_for(dm: PatchDataModule, split: str, i: int) -> np.ndarray:
    ds = dm.datasets[split]
    s, o = ds.locate(i)
    return _stored_patch(dm.root, ds.shards[s], o)


def test_train_augmentation_permutes_pixels(tiny_root: Path) -> None:
    torch.manual_seed(0)
    dm = _dm(tiny_root, augment=True)
    dm.setup("fit")
    train = dm.datasets["train"]
    assert train.augment and train.crop_size is None
    changed = 0
    for i in range(len(train)):
        stored = _expected(_stored_for(dm, "train", i))
        img = train.image(i)
        assert img.shape == stored.shape
        assert torch.equal(torch.sort(img.flatten()).values, torch.sort(stored.flatten()).values)
        assert any(torch.equal(img, v) for v in _d4_variants(stored))
        changed += not torch.equal(img, stored)
    # Several draws on the same item reach more than one D4 element.
    seen = {tuple(train.image(0).flatten()[:4].tolist()) for _ in range(40)}
    assert len(seen) > 1
    assert changed > 0


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_test_not_augmented(tiny_root: Path, split: str) -> None:
    dm = _dm(tiny_root, augment=True, crop_size=16)
    dm.setup()
    ds = dm.datasets[split]
    assert not ds.augment and ds.crop_size is None
    assert len(ds) > 0
    for i in range(len(ds)):
        for _ in range(3):
            assert torch.equal(ds.image(i), _expected(_stored_for(dm, split, i)))


def test_crop_gives_subwindows(tiny_root: Path) -> None:
    torch.manual_seed(1)
    manifest = read_manifest(tiny_root)
    shards = manifest["shards"][:2]
    ds = PatchDataset(tiny_root, shards, crop_size=16, augment=False)
    positions = set()
    for i in range(len(ds)):
        s, o = ds.locate(i)
        stored = _expected(_stored_patch(tiny_root, shards[s], o))
        for _ in range(3):
            img = ds.image(i)
            assert img.shape == (1, 16, 16) and img.dtype == torch.float32
            assert img.is_contiguous()
            pos = _find_subwindow(stored, img)
            assert pos is not None
            positions.add(pos)
    assert len(positions) > 1  # the crop is random, not fixed


def test_datamodule_crop_with_augment(tiny_root: Path) -> None:
    torch.manual_seed(2)
    dm = _dm(tiny_root, crop_size=16, augment=True)
    dm.setup()
    train = dm.datasets["train"]
    for i in range(min(len(train), 4)):
        stored = _expected(_stored_for(dm, "train", i))
        img = train.image(i)
        assert img.shape == (1, 16, 16)
        # Some D4 element of the crop is a window of the stored patch.
        assert any(_find_subwindow(stored, v) is not None for v in _d4_variants(img))


@pytest.mark.parametrize("crop", [0, -4, 33])
def test_dataset_crop_out_of_range(tiny_root: Path, crop: int) -> None:
    shards = read_manifest(tiny_root)["shards"]
    with pytest.raises(ValueError, match="crop_size"):
        PatchDataset(tiny_root, shards, crop_size=crop)


def test_dataset_crop_equal_to_patch_is_whole(tiny_root: Path) -> None:
    shards = read_manifest(tiny_root)["shards"][:1]
    ds = PatchDataset(tiny_root, shards, crop_size=32)
    assert torch.equal(ds.image(0), _expected(_stored_patch(tiny_root, shards[0], 0)))


@pytest.mark.parametrize("crop", [8, 24, 0, -16])
def test_datamodule_crop_not_multiple_of_16(tiny_root: Path, crop: int) -> None:
    with pytest.raises(ValueError, match=rf"crop_size={crop}\b"):
        _dm(tiny_root, crop_size=crop)


@pytest.mark.parametrize("bs", [0, -1])
def test_batch_size_must_be_positive(tiny_root: Path, bs: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _dm(tiny_root, batch_size=bs)


# ----------------------------------------------------------------------------- loaders


def test_train_dataloader_batches(tiny_root: Path) -> None:
    dm = _dm(tiny_root, batch_size=3, num_workers=0)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.num_workers == 0 and loader.batch_size == 3
    n = 0
    for raw in loader:
        assert raw["image"].dtype == torch.uint16
        batch = dm.on_after_batch_transfer(raw, 0)  # decoded where the Trainer put it
        img = batch["image"]
        assert img.dtype == torch.float32
        assert img.ndim == 4 and img.shape[1:] == (1, 32, 32) and 1 <= img.shape[0] <= 3
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
        assert len(batch["scene_id"]) == img.shape[0]
        assert all(s in dm.scene_ids("train") for s in batch["scene_id"])
        n += img.shape[0]
    assert n == len(dm.datasets["train"])
    # Evaluation loaders keep manifest order.
    val = list(dm.val_dataloader())
    idx = torch.cat([b["index"] for b in val]).tolist()
    assert idx == list(range(len(dm.datasets["val"])))
    assert dm.predict_dataloader().dataset is dm.datasets["test"]


def test_dataloader_with_persistent_workers(tiny_root: Path) -> None:
    dm = _dm(tiny_root, batch_size=2, num_workers=2, persistent_workers=True)
    dm.setup("fit")
    # Touch the parent's cache first: workers must still open shards themselves.
    dm.datasets["train"][0]
    assert dm.datasets["train"]._cache
    loader = dm.train_dataloader()
    assert loader.num_workers == 2 and loader.persistent_workers
    batch = dm.on_after_batch_transfer(next(iter(loader)), 0)  # what the Trainer does
    assert batch["image"].shape[1:] == (1, 32, 32)
    assert batch["image"].dtype == torch.float32


def test_dataset_pickles_without_cache(tiny_root: Path) -> None:
    shards = read_manifest(tiny_root)["shards"]
    ds = PatchDataset(tiny_root, shards)
    first = ds.image(0)
    ds[len(ds) - 1]
    assert len(ds._cache) >= 1
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._cache == {}
    assert len(ds._cache) >= 1  # pickling does not clear the original
    assert torch.equal(clone.image(0), first)
    assert len(clone) == len(ds)


# ------------------------------------------------------------------ corrupt / missing data


def test_truncated_shard_named_at_setup(root_copy: Path) -> None:
    shard = read_manifest(root_copy)["shards"][2]
    path = root_copy / shard["file"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    dm = _dm(root_copy)
    with pytest.raises(ValueError, match=Path(shard["file"]).name):
        dm.setup("fit")


def test_missing_shard_named_at_setup(root_copy: Path) -> None:
    shard = read_manifest(root_copy)["shards"][0]
    (root_copy / shard["file"]).unlink()
    dm = _dm(root_copy)
    with pytest.raises(FileNotFoundError, match=Path(shard["file"]).name):
        dm.setup()


def test_missing_nondefault_root(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dataset"
    dm = _dm(missing)
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        dm.prepare_data()
    assert not missing.exists()  # never generated silently
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        dm.setup("fit")


def test_default_root_generated_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = synth_dataset.make_synthetic_dataset
    calls: list[Path] = []

    def tiny(out: Path, **kw: Any) -> Path:
        calls.append(Path(out))
        return real(out, scenes=3, size=32, patch_size=32)

    monkeypatch.setattr(synth_dataset, "make_synthetic_dataset", tiny)
    dm = PatchDataModule(num_workers=0, pin_memory=False)
    dm.prepare_data()
    assert len(calls) == 1
    assert (tmp_path / "data" / "synthetic" / "manifest.json").is_file()
    dm.prepare_data()
    assert len(calls) == 1
    # A fresh module on the same default root does not regenerate either.
    PatchDataModule(num_workers=0).prepare_data()
    assert len(calls) == 1
    dm.setup("fit")
    assert sum(len(dm.datasets[s]) for s in SPLITS) == 3
    assert all(len(dm.scene_ids(s)) == 1 for s in SPLITS)  # type: ignore[arg-type]
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1:] == (1, 32, 32)
