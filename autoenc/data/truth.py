# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Clean truth next to a synthetic dataset: the noise-free reflectivity of every patch.

For each shard ``shards/<name>.npy`` a twin ``truth/<name>.npy`` holds the same patches of the
reflectivity map the speckled scene was simulated from, coded exactly like the shard (uint16 of
the clipped dB window of the manifest's ``normalisation``). Shard entries gain ``truth_file``,
``truth_nbytes`` and ``truth_sha256``; the manifest gains a ``truth`` record saying what the
arrays are. Real data (``autoenc prepare``) has none of this.

Invariants:
    * truth patch ``k`` of a shard covers the same scene pixels as image patch ``k``
      (the shard's ``origins``);
    * the truth is coded with the same window and rounding as the image, so ``decode`` gives
      both on the same [0, 1] scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.dataset_format import file_sha256, read_manifest, write_manifest, write_npy
from autoenc.sar.normalisation import Normalisation

TRUTH_DIR = "truth"
TRUTH_KIND = "reflectivity"

#: Maps a scene's (rows, cols) index arrays to its truth in σ⁰ dB, float32 (len(rows), len(cols)).
TruthReader = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float32]]


def attach_truth(
    root: Path, readers: Mapping[str, TruthReader], record: dict[str, Any]
) -> dict[str, Any]:
    """Write the truth twin of every shard of ``root`` and rewrite its manifest.

    Args:
        root: a complete dataset (its manifest and shards written).
        readers: per scene id, a function returning the truth at given scene rows and columns.
        record: what the truth is (generator, product); stored as the manifest's ``truth``
            with ``kind`` and ``encoding`` added.

    Returns:
        The new manifest.

    Raises:
        KeyError: a shard's scene has no reader (the message names it).
    """
    root = Path(root)
    manifest = read_manifest(root)
    norm = Normalisation.from_dict(manifest["normalisation"])
    p = int(manifest["patch_size"])
    offsets = np.arange(p)
    for entry in manifest["shards"]:
        sid = entry["scene_id"]
        if sid not in readers:
            raise KeyError(f"no truth for scene {sid!r} of {root}")
        read = readers[sid]
        patches = [read(r + offsets, c + offsets) for r, c in entry["origins"]]
        db = np.stack(patches)[:, None]  # (N, 1, P, P)
        codes = norm.to_codes(db)  # the shards' own coding (patchify)
        rel = f"{TRUTH_DIR}/{Path(entry['file']).name}"
        path = write_npy(root / rel, codes)
        entry.update(truth_file=rel, truth_nbytes=path.stat().st_size,
                     truth_sha256=file_sha256(path))  # fmt: skip
    manifest["truth"] = {
        "kind": TRUTH_KIND,
        "encoding": "truth/<shard>.npy: the noise-free σ⁰ of each patch, coded like the shard",
        **record,
    }
    write_manifest(root, manifest)
    return manifest
