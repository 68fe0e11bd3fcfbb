# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Explicit scene -> split assignments for ``autoenc prepare --split-file``.

Accepted forms: a JSON object ``{"scene": "train", ...}`` or a CSV/TSV/whitespace file with
one ``scene,split`` pair per line (``#`` comments allowed). A scene may be named by its id
(the file stem), its file name or its path.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from autoenc.data.dataset_format import SPLITS

log = logging.getLogger(__name__)


def _pairs(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read split file {path}: {e}") from e
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"split file {path} is not valid JSON: {e}") from e
        return [(str(k), str(v)) for k, v in obj.items()]
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p for p in re.split(r"[,\t ]+", line) if p]
        if len(parts) != 2:
            raise ValueError(f"split file {path} line {n}: expected 'scene,split', got {line!r}")
        if n == 1 and parts[1].lower() == "split":
            continue  # header
        pairs.append((parts[0], parts[1]))
    return pairs


def read_split_file(path: Path, scenes: dict[str, Path]) -> dict[str, str]:
    """Map every scene id in ``scenes`` (id -> file) to its split from ``path``.

    Raises:
        ValueError: unreadable file, an unknown split name, or scenes the file does not cover
            (the message names them).
    """
    lookup: dict[str, str] = {}
    for scene_id, p in scenes.items():
        for alias in (scene_id, p.name, str(p), str(p.resolve())):
            lookup[alias] = scene_id
    out: dict[str, str] = {}
    unknown: list[str] = []
    for name, split in _pairs(path):
        if split.lower() not in SPLITS:
            raise ValueError(
                f"split file {path}: scene {name!r} has split {split!r}, not one of {SPLITS}"
            )
        sid = lookup.get(name) or lookup.get(Path(name).stem)
        if sid is None:
            unknown.append(name)
            continue
        if sid in out and out[sid] != split.lower():
            raise ValueError(f"split file {path}: scene {sid!r} is given two splits")
        out[sid] = split.lower()
    if unknown:
        log.warning("split file %s names scenes not among the inputs: %s", path, ", ".join(unknown))
    missing = sorted(set(scenes) - set(out))
    if missing:
        raise ValueError(f"split file {path} does not assign: {', '.join(missing)}")
    return out
