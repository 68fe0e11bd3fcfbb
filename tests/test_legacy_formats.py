# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Files written by an older autoenc still load: a dataset and a checkpoint of commit 8166f2f.

The fixtures in ``tests/data/legacy/`` were made once, by ``make_legacy_fixtures.py`` run with
the code of commit 8166f2f (before issue 13 typed the preprocessing record); they are never
regenerated. The checkpoint is kept pickle-free (``ckpt_pack.py``: its tensors in
``old_plain_ckpt.npz``, the rest in ``old_plain_ckpt.json``) and written back here
with ``torch.save`` as the very dict the old ``autoenc fit`` saved. The old ``.aec`` files
(format versions 1 and 2) are ``tests/data/v1_scene.aec`` and ``v2_scene.aec``, read by
``tests/test_codec_exceptions.py``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from fit_args import tiny

sys.path.insert(0, str(Path(__file__).parent / "data" / "legacy"))
import ckpt_pack  # noqa: E402

from autoenc.cli import run_trainer
from autoenc.codec.model_io import load_codec
from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.patches import PatchDataset
from autoenc.sar.normalisation import Normalisation, unit_from_codes
from autoenc.sar.preprocessing import Preprocessing
from autoenc.task import CompressionTask

LEGACY = Path(__file__).parent / "data" / "legacy"
DATASET = LEGACY / "dataset"
PACKED = LEGACY / "old_plain_ckpt"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "plain.yaml"


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The old checkpoint, rebuilt from its pickle-free form as the old fit saved it."""
    path = tmp_path_factory.mktemp("legacy") / "old_plain.ckpt"
    torch.save(ckpt_pack.load(PACKED), path)
    return path


def test_fixtures_are_the_committed_ones() -> None:
    rec = json.loads((LEGACY / "fixtures.json").read_text())
    assert rec["commit"] == "8166f2f"
    for name, digest in rec["sha256"].items():
        assert hashlib.sha256((LEGACY / name).read_bytes()).hexdigest() == digest, name


def test_old_manifest_and_shards_load() -> None:
    m = read_manifest(DATASET)
    validate_shards(DATASET, m, check_hash=True)
    assert Normalisation.from_dict(m["normalisation"]) == Normalisation(-25.0, 5.0, -30.0)
    ds = PatchDataset(DATASET, m["shards"])
    assert len(ds) == sum(s["num_patches"] for s in m["scenes"].values()) == 12
    x = ds[0]["image"]
    assert x.shape == (1, 16, 16) and x.dtype == torch.uint16  # codes; units are q / 65535
    assert 0 < int(x.numpy().max())
    assert ds.mask(0).shape == (1, 16, 16)


def test_old_checkpoint_record_is_the_typed_one(ckpt_path: Path) -> None:
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    old = ckpt["autoenc_preprocessing"]
    pre = Preprocessing.from_dict(old)
    assert pre.to_dict() == old
    # The old code's preprocessing_of(manifest) is today's Preprocessing.from_manifest.
    assert Preprocessing.from_manifest(read_manifest(DATASET)) == pre
    assert pre.units == ("linear intensity",) and pre.input_kinds == ("intensity",)


def test_old_checkpoint_is_a_codec(ckpt_path: Path) -> None:
    codec = load_codec(ckpt_path)
    assert type(codec.model).__name__ == "PlainAutoencoder"
    assert codec.preprocessing == Preprocessing.from_manifest(read_manifest(DATASET))
    codes = PatchDataset(DATASET, read_manifest(DATASET)["shards"])[0]["image"][None]
    x = torch.from_numpy(unit_from_codes(codes.numpy()))  # (1, 1, 16, 16) in [0, 1]
    with torch.inference_mode():
        coded = codec.model.compress(x)
        x_hat = codec.model.decompress(coded["strings"], coded["shape"])["x_hat"]
        ref = codec.model(x)["x_hat"]
    assert x_hat.shape == x.shape
    torch.testing.assert_close(x_hat, ref, atol=1e-5, rtol=0)


def test_old_checkpoint_loads_into_the_task(ckpt_path: Path) -> None:
    task = CompressionTask.load_from_checkpoint(ckpt_path, map_location="cpu")
    assert isinstance(task.preprocessing, Preprocessing)
    assert task.preprocessing == load_codec(ckpt_path).preprocessing


def test_old_checkpoint_validates_to_its_recorded_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ckpt_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the config's run folder lands here
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    (recorded,) = [
        float(v["best_model_score"]) for k, v in ckpt["callbacks"].items() if "Checkpoint" in k
    ]
    args = [*tiny(DATASET), "--model.model.init_args.latent_channels=4"]
    cli = run_trainer(["validate", "--config", str(CONFIG), *args, f"--ckpt_path={ckpt_path}"])
    assert isinstance(cli.model.preprocessing, Preprocessing)
    # Same weights, data and fp32 CPU arithmetic as the old fit's last validation.
    assert float(cli.trainer.callback_metrics["val/psnr"]) == pytest.approx(recorded, abs=1e-3)
