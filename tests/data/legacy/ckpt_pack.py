# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""A Lightning checkpoint as pickle-free files: its tensors in a ``.npz``, the rest in JSON.

The legacy checkpoint fixture is kept in git this way (no ``*.ckpt``, no pickle), and
:func:`unpack` rebuilds the very dict ``autoenc fit`` saved, which ``tests/test_legacy_formats.py``
writes back with ``torch.save`` for today's loaders to read. The JSON keeps the tree: a dict
is ``{"d": [[key, value], ...]}`` (int keys stay ints), an ``OrderedDict`` ``{"o": ...}``, a list
``{"l": [...]}``, a tuple ``{"t": [...]}``, a tensor ``{"T": name}`` (its array's name in the
``.npz``, read back with ``allow_pickle=False``);
None, bools, ints, floats and strings are themselves.

Invariant: ``unpack(*pack(ckpt))`` equals ``ckpt`` (tensors bit for bit, containers by type).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch


def pack(ckpt: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors by name, JSON tree) of a checkpoint dict."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(o: Any) -> Any:
        if isinstance(o, torch.Tensor):
            if o.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
                raise TypeError(f"cannot pack a {o.dtype} tensor into numpy")
            name = f"t{len(tensors)}"
            tensors[name] = o.detach().contiguous().clone()
            return {"T": name}
        if isinstance(o, OrderedDict):
            return {"o": [[k, enc(v)] for k, v in o.items()]}
        if isinstance(o, dict):
            return {"d": [[k, enc(v)] for k, v in o.items()]}
        if isinstance(o, list):
            return {"l": [enc(v) for v in o]}
        if isinstance(o, tuple):
            return {"t": [enc(v) for v in o]}
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise TypeError(f"cannot pack {type(o).__name__}")

    return tensors, enc(ckpt)


def unpack(tensors: dict[str, torch.Tensor], tree: Any) -> Any:
    """Inverse of :func:`pack`."""

    def dec(o: Any) -> Any:
        if isinstance(o, dict):
            ((tag, v),) = o.items()
            if tag == "T":
                return tensors[v]
            if tag == "o":
                return OrderedDict((k, dec(x)) for k, x in v)
            if tag == "d":
                return {k: dec(x) for k, x in v}
            return [dec(x) for x in v] if tag == "l" else tuple(dec(x) for x in v)
        return o

    return dec(tree)


def save(ckpt: Any, stem: Path) -> list[Path]:
    """Write ``<stem>.npz`` and ``<stem>.json``; returns both paths."""
    tensors, tree = pack(ckpt)
    weights, meta = stem.with_suffix(".npz"), stem.with_suffix(".json")
    np.savez(weights, **{k: v.numpy() for k, v in tensors.items()})
    meta.write_text(json.dumps(tree, indent=1) + "\n")
    return [weights, meta]


def load(stem: Path) -> Any:
    """The checkpoint dict saved by :func:`save`."""
    tree = json.loads(stem.with_suffix(".json").read_text())
    with np.load(stem.with_suffix(".npz"), allow_pickle=False) as arrays:
        tensors = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files}
    return unpack(tensors, tree)
