# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The typed preprocessing record: dict round trip, errors naming the key, manifest, exports."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from autoenc.codec.model_io import ModelError, export_safetensors, load_codec
from autoenc.data.dataset_format import read_manifest
from autoenc.pretrained import default_path
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.preprocessing import Preprocessing

LEGACY = Path(__file__).parent / "data" / "legacy"
sys.path.insert(0, str(LEGACY))
import ckpt_pack  # noqa: E402

#: A record as autoenc has always written it (every key present).
RECORD: dict[str, Any] = {
    "normalisation": {"vmin_db": -25.0, "vmax_db": 5.0, "noise_floor_db": -30.0},
    "units": ["linear intensity", "sigma0"],
    "input_kinds": ["amplitude", "intensity"],
    "value_encoding": "unit = q / 65535 (uint16 over [0,1] of the normalised dB window)",
    "window": {"method": "fixed", "db_window": [-25.0, 5.0], "train_scenes": ["a", "b"]},
}


def test_dict_round_trip_is_the_stored_dict() -> None:
    p = Preprocessing.from_dict(RECORD)
    assert p.normalisation == Normalisation(-25.0, 5.0, -30.0)
    assert p.units == ("linear intensity", "sigma0") and p.input_kinds == ("amplitude", "intensity")
    assert p.to_dict() == RECORD
    assert list(p.to_dict()) == list(RECORD)  # same keys in the same order: same pickles
    assert json.dumps(p.to_dict()) == json.dumps(RECORD)
    assert Preprocessing.from_dict(p.to_dict()) == p
    assert hash(p) == hash(Preprocessing.from_dict(RECORD))  # frozen, deeply immutable
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.units = ()  # type: ignore[misc]
    # Key order (a safetensors export sorts keys) does not change the record.
    shuffled = {**RECORD, "window": dict(reversed(list(RECORD["window"].items())))}
    assert Preprocessing.from_dict(shuffled) == p
    assert hash(Preprocessing.from_dict(shuffled)) == hash(p)
    assert Preprocessing.from_dict({**RECORD, "window": {"method": "other"}}) != p
    w = p.to_dict()["window"]
    w["method"] = "edited"  # the caller's copy: the record is unchanged
    assert p.to_dict()["window"]["method"] == "fixed"


def test_older_records_take_defaults() -> None:
    # Records without units/kinds/encoding/window (hand-made or older) still load.
    p = Preprocessing.from_dict({"normalisation": {"vmin_db": -20, "vmax_db": 0}})
    assert p == Preprocessing(Normalisation(-20.0, 0.0))
    assert p.units == () and p.input_kinds == () and p.value_encoding is None and p.window is None
    assert p.to_dict() == {
        "normalisation": {"vmin_db": -20.0, "vmax_db": 0.0, "noise_floor_db": -30.0},
        "units": [],
        "input_kinds": [],
        "value_encoding": None,
        "window": None,
    }


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d.pop("normalisation"), "'normalisation'"),
        (lambda d: d.update(normalisation=[-25, 5]), "'normalisation'"),
        (lambda d: d["normalisation"].pop("vmax_db"), "'vmax_db'"),
        (lambda d: d["normalisation"].update(vmin_db=None), "'normalisation'"),
        (lambda d: d["normalisation"].update(vmin_db=9.0), "vmin_db=9.0"),
        (lambda d: d.update(units="sigma0"), "'units'"),
        (lambda d: d.update(input_kinds=[1]), "'input_kinds'"),
        (lambda d: d.update(value_encoding=3), "'value_encoding'"),
        (lambda d: d.update(window={"x": object()}), "'window'"),
    ],
    ids=[
        "no-norm",
        "norm-list",
        "no-vmax",
        "vmin-none",
        "bad-window",
        "units",
        "kinds",
        "encoding",
        "window",
    ],  # fmt: skip
)
def test_bad_record_names_the_key(edit: Any, key: str) -> None:
    d = json.loads(json.dumps(RECORD))
    edit(d)
    with pytest.raises(ValueError, match=key):
        Preprocessing.from_dict(d)


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="must be an object, got list"):
        Preprocessing.from_dict([1, 2])


def test_from_manifest_on_the_fixture_manifest() -> None:
    m = read_manifest(LEGACY / "dataset")
    p = Preprocessing.from_manifest(m)
    assert p.normalisation == Normalisation.from_dict(m["normalisation"])
    assert p.units == ("linear intensity",) and p.input_kinds == ("intensity",)
    assert p.value_encoding == m["value_encoding"]
    assert p.to_dict()["window"] == m["window"]
    # Scenes without units/kind count as "unknown"; sets are sorted.
    m2 = {**m, "scenes": {"a": {"units": "sigma0", "input_kind": "amplitude"}, "b": {}}}
    p2 = Preprocessing.from_manifest(m2)
    assert p2.units == ("sigma0", "unknown") and p2.input_kinds == ("amplitude", "unknown")
    with pytest.raises(ValueError, match="'normalisation'"):
        Preprocessing.from_manifest({k: v for k, v in m.items() if k != "normalisation"})


def test_shipped_model_has_a_typed_record(tmp_path: Path) -> None:
    path = default_path()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    codec = load_codec(path)
    assert isinstance(codec.preprocessing, Preprocessing)
    assert codec.preprocessing.to_dict() == json.loads(meta["preprocessing"])
    assert codec.preprocessing.normalisation.window == (-25.0, 5.0)
    out = export_safetensors(codec, tmp_path / "again.safetensors")
    with safe_open(str(out), framework="pt") as f:
        assert f.metadata()["preprocessing"] == meta["preprocessing"]  # byte for byte
    assert load_codec(out).preprocessing == codec.preprocessing


def test_bad_record_in_a_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    ckpt = ckpt_pack.load(LEGACY / "old_plain_ckpt")  # the old fit's checkpoint dict
    ckpt["autoenc_preprocessing"]["units"] = "sigma0"
    bad = tmp_path / "bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(ModelError, match=rf"{bad}: bad preprocessing parameters.*'units'"):
        load_codec(bad)
    ckpt.pop("autoenc_preprocessing")
    torch.save(ckpt, bad)
    with pytest.raises(ModelError, match=rf"{bad} lacks the preprocessing parameters"):
        load_codec(bad)
