# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded generator of the old-format fixtures in ``tests/data/legacy/``, kept for good.

The fixtures were made ONCE, by the code of commit 8166f2f (before issue 13 typed the
preprocessing record and moved the radiometry into ``autoenc/sar/``), in a worktree of that
commit, with this script from the current tree:

    git worktree add --detach /tmp/legacytree 8166f2f
    PYTHONPATH=/tmp/legacytree .venv/bin/python tests/data/legacy/make_legacy_fixtures.py \\
        tests/data/legacy
    git worktree remove --force /tmp/legacytree

Running it again with a later autoenc writes that version's formats instead: it is kept to
show how the files came to be. It writes:

* ``dataset/``: ``autoenc.data.synth_dataset.make_synthetic_dataset`` with 3 scenes of
  32 x 32 px, 16-px patches, seed 7 (``manifest.json``, the uint16 shards, their packed
  masks and clean truths: a few KB);
* ``old_plain.ckpt``: ``last.ckpt`` of ``autoenc fit --config configs/plain.yaml`` on that
  dataset, shrunk by ``tests/data/fit_args.py``'s ``tiny()`` (base_channels 4, 2 steps, CPU)
  and latent_channels 4, 32-bit precision, no augmentation (190 KB); its
  ``autoenc_preprocessing`` is what the old ``preprocessing_of(manifest)`` gave. It is kept in
  git pickle-free, as ``old_plain_ckpt.npz`` + ``old_plain_ckpt.json``
  (``ckpt_pack.save``; no ``*.ckpt`` is committed), and its original SHA-256 is recorded;
* ``fixtures.json``: what produced them (commit, arguments) and the SHA-256 of each file.

"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import autoenc
from autoenc.data.synth_dataset import make_synthetic_dataset

COMMIT = "8166f2f"
DATASET = {"scenes": 3, "size": 32, "patch_size": 16, "seed": 7}


def _tiny(root: Path) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/data: fit_args
    from fit_args import tiny

    extra = ["--model.model.init_args.latent_channels=4", "--trainer.precision=32-true"]
    return [*tiny(root, steps=2), *extra, "--data.augment=false"]


def make_legacy_fixtures(out: Path) -> dict[str, str]:
    """Write the fixtures under ``out``; returns file name -> SHA-256."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "dataset"
    if data.exists():
        shutil.rmtree(data)
    make_synthetic_dataset(data, **DATASET)  # type: ignore[arg-type]
    configs = Path(autoenc.__file__).resolve().parents[1] / "configs"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "autoenc", "fit", "--config", str(configs / "plain.yaml")]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*cmd, *_tiny(data)], cwd=tmp, env=env, check=True)
        ckpt = Path(tmp) / "lightning_logs" / "plain" / "checkpoints" / "last.ckpt"
        original = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        # pickle-free in git: tensors in .npz, the rest in JSON (ckpt_pack.py, next to this)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import ckpt_pack

        ckpt_pack.save(torch.load(ckpt, map_location="cpu", weights_only=True),
                       out / "old_plain_ckpt")  # fmt: skip
    files = sorted(
        p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".npy", ".npz")
    )
    sums = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.name != "fixtures.json"
    }
    record = {"commit": COMMIT, "autoenc": autoenc.__version__, "dataset": DATASET,
              "fit": "autoenc fit --config configs/plain.yaml + tiny() overrides",
              "sha256": sums, "old_plain.ckpt": {"sha256": original, "kept_as":
              "old_plain_ckpt.npz + old_plain_ckpt.json (ckpt_pack.py)"}}  # fmt: skip
    (out / "fixtures.json").write_text(json.dumps(record, indent=1) + "\n")
    return sums


if __name__ == "__main__":
    for name, digest in make_legacy_fixtures(Path(sys.argv[1])).items():
        print(digest, name)
