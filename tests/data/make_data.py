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


def make_tiny_dataset(out: Path) -> Path:
    """Write the tiny dataset: 6 scenes x 4 patches, split 4/1/1 scenes by the seed."""
    return make_synthetic_dataset(out, **TINY)  # type: ignore[arg-type]


if __name__ == "__main__":
    print(make_tiny_dataset(Path(sys.argv[1])))
