# Copyright (c) autoenc developers.
# Licensed under the MIT License.

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).parent / "data"))

from make_data import make_tiny_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny scene-split patch dataset shared by the session (read-only)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")
