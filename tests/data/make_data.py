# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Seeded generator of the tiny test dataset (6 scenes of 64x64 px, 32-px patches).

Run ``python tests/data/make_data.py OUT`` to inspect it; the test suite builds it in a
temporary folder through :func:`make_tiny_dataset`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from autoenc.data.synth_dataset import make_synthetic_dataset

TINY = {"scenes": 6, "size": 64, "patch_size": 32, "looks": 4.4, "seed": 7}


#: The codec tests' training data: 64-px patches. Models trained on 32-px patches see only
#: 2 x 2 latents, all of them at a border, and fail on whole scenes (measured: a tiny hyperprior
#: gave 9.4 dB on the 150 x 200 fixture, below a flat image's 10.2 dB; 19.2 dB from 64-px patches).
CODEC_TINY = {"scenes": 6, "size": 128, "patch_size": 64, "seed": 7}


def make_tiny_dataset(out: Path) -> Path:
    """Write the tiny dataset: 6 scenes x 4 patches, split 4/1/1 scenes by the seed."""
    return make_synthetic_dataset(out, **TINY)  # type: ignore[arg-type]


def make_codec_dataset(out: Path) -> Path:
    """Write the codec tests' training data: 6 scenes x 4 patches of 64 px."""
    return make_synthetic_dataset(out, **CODEC_TINY)  # type: ignore[arg-type]


if __name__ == "__main__":
    print(make_tiny_dataset(Path(sys.argv[1])))
