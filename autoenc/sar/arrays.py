# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Numpy or torch: the one test that lets the radiometry take either, torch never imported.

The conversions of :mod:`autoenc.sar.normalisation` and :mod:`autoenc.sar.radiometry` are
written once; the metrics and the data loader call them with ``torch.Tensor`` values, the
codec and ``prepare`` with numpy arrays. :mod:`autoenc.sar` must import without torch
(tests/test_import_graph.py), so it asks ``sys.modules`` instead: a tensor can only exist once
its caller has imported torch.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeGuard

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["is_tensor"]


def is_tensor(x: object) -> TypeGuard[Tensor]:
    """True for a ``torch.Tensor``; never imports torch (False while nothing has)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)
