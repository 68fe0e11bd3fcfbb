# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Patch dataset format: manifest, shards, validation and splitting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoenc.data.dataset_format import read_manifest, split_scenes, validate_shards
from autoenc.data.synth_dataset import make_synthetic_dataset, synth_main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "tiny"
    return make_synthetic_dataset(out, scenes=6, size=64, patch_size=32, seed=7)


def test_manifest_contents(tiny: Path) -> None:
    m = read_manifest(tiny)
    assert m["format_version"] == 1 and m["patch_size"] == 32 and m["storage_dtype"] == "uint16"
    assert m["normalisation"] == {"vmin_db": -25.0, "vmax_db": 5.0, "noise_floor_db": -30.0}
    assert len(m["scenes"]) == 6
    assert sum(s["num_patches"] for s in m["shards"]) == 6 * 4
    assert sum(s["num_patches"] for s in m["scenes"].values()) == 6 * 4
    splits = [s["split"] for s in m["scenes"].values()]
    assert set(splits) == {"train", "val", "test"}
    assert sorted(s["scene_id"] for s in m["shards"]) == sorted(m["scenes"])
    assert "seed=7" in m["split_method"]
    assert m["source"]["args"]["scenes"] == 6
    validate_shards(tiny, m, check_hash=True)
    assert not list(tiny.parent.glob(".tiny.*"))  # no leftover temp dirs


def test_shards_load_with_mmap(tiny: Path) -> None:
    m = read_manifest(tiny)
    for s in m["shards"]:
        a = np.load(tiny / s["file"], mmap_mode="r")
        assert a.shape == (s["num_patches"], 1, 32, 32) and a.dtype == np.uint16
        assert a.max() > a.min()


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_truncated_shard_detected(tiny: Path, tmp_path: Path) -> None:
    d = _copy(tiny, tmp_path / "c")
    m = read_manifest(d)
    f = d / m["shards"][2]["file"]
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=f.name):
        validate_shards(d, m)
    # Same size but a manifest that agrees with the truncated size: header check catches it.
    m["shards"][2]["nbytes"] = len(data) - 100
    with pytest.raises(ValueError, match="truncated"):
        validate_shards(d, m)


def test_wrong_shape_and_hash_detected(tiny: Path, tmp_path: Path) -> None:
    d = _copy(tiny, tmp_path / "c")
    m = read_manifest(d)
    m["shards"][0]["num_patches"] += 1
    with pytest.raises(ValueError, match="shape"):
        validate_shards(d, m)
    m = read_manifest(d)
    f = d / m["shards"][1]["file"]
    b = bytearray(f.read_bytes())
    b[-1] ^= 0xFF
    f.write_bytes(bytes(b))
    validate_shards(d, m)
    with pytest.raises(ValueError, match="sha256"):
        validate_shards(d, m, check_hash=True)


def test_missing_shard_named(tiny: Path, tmp_path: Path) -> None:
    d = _copy(tiny, tmp_path / "c")
    m = read_manifest(d)
    f = d / m["shards"][0]["file"]
    f.unlink()
    with pytest.raises(FileNotFoundError, match=f.name):
        validate_shards(d, m)


def test_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ValueError, match="lacks keys"):
        read_manifest(tmp_path)
    base = {
        "format_version": 99,
        "patch_size": 32,
        "storage_dtype": "uint16",
        "normalisation": {},
        "scenes": {},
        "shards": [],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(base))
    with pytest.raises(ValueError, match="format_version 99"):
        read_manifest(tmp_path)


def test_existing_out_requires_overwrite(tiny: Path, tmp_path: Path) -> None:
    d = _copy(tiny, tmp_path / "c")
    with pytest.raises(FileExistsError, match=str(d)):
        make_synthetic_dataset(d, scenes=3, size=32, patch_size=32)
    assert (
        synth_main(
            ["--out", str(d), "--scenes", "3", "--size", "32", "--patch-size", "32", "--quiet"]
        )
        == 2
    )
    make_synthetic_dataset(d, scenes=3, size=32, patch_size=32, overwrite=True)
    assert len(read_manifest(d)["scenes"]) == 3


def test_cli_and_order_independence(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    rc = synth_main(
        [
            "--out",
            str(out),
            "--scenes",
            "6",
            "--size",
            "64",
            "--patch-size",
            "32",
            "--seed",
            "7",
            "--quiet",
        ]
    )
    assert rc == 0
    a, b = read_manifest(tiny), read_manifest(out)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]


def test_split_determinism() -> None:
    ids = [f"s{i}" for i in range(24)]
    a, desc = split_scenes(ids, (0.8, 0.1, 0.1), seed=1)
    b, _ = split_scenes(list(reversed(ids)), (0.8, 0.1, 0.1), seed=1)
    c, _ = split_scenes(ids, (0.8, 0.1, 0.1), seed=2)
    assert a == b and a != c
    counts = [sum(v == k for v in a.values()) for k in ("train", "val", "test")]
    assert counts == [19, 3, 2]  # largest-remainder rounding of 19.2/2.4/2.4
    assert "24" in desc
    for n in (3, 4, 5):
        s, _ = split_scenes([f"x{i}" for i in range(n)], seed=0)
        assert set(s.values()) == {"train", "val", "test"}


def test_truth_round_trips_through_the_dataset(tiny: Path) -> None:
    """Every truth patch is the generator's reflectivity at the patch's origin, coded alike."""
    from autoenc.data.patches import PatchDataset
    from autoenc.data.synth import synth_scene
    from autoenc.data.synth_geotiff import scene_rng
    from autoenc.sar.normalisation import Normalisation

    m = read_manifest(tiny)
    assert m["truth"]["kind"] == "reflectivity" and m["truth"]["product"] == "grdh"
    assert m["source"]["speckle"]["product"] == "grdh"
    ds = PatchDataset(tiny, m["shards"])
    assert ds.has_truth
    index = 0
    for s in m["shards"]:
        i = int(s["scene_id"].rsplit("_", 1)[1])
        _, truth_db = synth_scene(64, rng=scene_rng(7, i))
        want = Normalisation(-25.0, 5.0).to_codes(truth_db)
        for r, c in s["origins"]:
            got = ds.truth(index)
            assert got is not None
            np.testing.assert_array_equal(got[0].numpy(), want[r : r + 32, c : c + 32])
            image = ds[index]["image"][0].numpy().astype(np.float64)
            assert not np.array_equal(image, got[0].numpy())  # the image is speckled
            index += 1
    assert index == len(ds)


def test_truth_damage_detected_and_real_data_has_none(tiny: Path, tmp_path: Path) -> None:
    from autoenc.data.patches import PatchDataset

    d = _copy(tiny, tmp_path / "c")
    m = read_manifest(d)
    f = d / m["shards"][1]["truth_file"]
    f.write_bytes(f.read_bytes()[:-64])
    with pytest.raises(ValueError, match=f"truth {f}"):
        validate_shards(d, m)
    f.unlink()
    with pytest.raises(FileNotFoundError, match="truth file missing"):
        validate_shards(d, m)
    bare = [{k: v for k, v in s.items() if not k.startswith("truth_")} for s in m["shards"]]
    ds = PatchDataset(d, bare)
    assert not ds.has_truth and ds.truth(0) is None
