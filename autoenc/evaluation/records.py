# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Per-sample evaluation records: one row per (method, operating point, patch).

``results.json`` holds ``{"meta": {...}, "records": [...]}`` and is what ``autoenc report``
reads; ``samples.csv`` holds the same records for spreadsheets and pandas. Non-finite values
are written as JSON ``null`` (CSV: empty) and read back as NaN. Both files are written to a
temporary name and renamed (the dataset writer's ``atomic_write``), so an interrupted run
never leaves a half-written result.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autoenc.data.dataset_format import atomic_write

RESULTS_NAME = "results.json"
CSV_NAME = "samples.csv"
GALLERY_NAME = "gallery.npz"
FORMAT = "autoenc-eval/1"
#: Columns every record has, in CSV order; metric columns follow, sorted.
KEY_COLUMNS = ("method", "family", "curve", "point", "role", "matched_to", "index", "scene_id")


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and a rename (readable by everyone)."""
    atomic_write(path, lambda f: f.write(data))


def jsonable(v: Any) -> Any:
    """``v`` with non-finite floats as ``None`` and numpy scalars as Python ones, recursively."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


@dataclass
class Results:
    """Evaluation meta-data plus flat per-sample records."""

    meta: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add_rows(
        self,
        method: str,
        family: str,
        curve: str,
        point: str,
        role: str,
        matched_to: str,
        base: Mapping[str, list[Any]],
        rows: Mapping[str, list[Any]],
    ) -> None:
        """Append one record per sample from column lists of equal length."""
        n = len(base["index"])
        for k, col in rows.items():
            if len(col) != n:
                raise ValueError(f"{method}: column {k!r} has {len(col)} values for {n} samples")
        fixed = {"method": method, "family": family, "curve": curve, "point": point,
                 "role": role, "matched_to": matched_to}  # fmt: skip
        for i in range(n):
            rec = dict(fixed)
            rec.update({k: v[i] for k, v in base.items()})
            rec.update({k: v[i] for k, v in rows.items()})
            self.records.append(rec)

    def columns(self) -> list[str]:
        """Key columns then every other column seen, sorted."""
        extra = sorted({k for r in self.records for k in r} - set(KEY_COLUMNS))
        return [*KEY_COLUMNS, *extra]

    def save(self, out: Path) -> None:
        """Write ``results.json`` and ``samples.csv`` into ``out`` (atomically each)."""
        doc = {
            "format": FORMAT,
            "meta": jsonable(self.meta),
            "records": [jsonable(r) for r in self.records],
        }
        text = json.dumps(doc, indent=1, allow_nan=False, sort_keys=False)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        for r in self.records:
            writer.writerow({k: "" if jsonable(v) is None else v for k, v in r.items()})
        write_bytes(out / CSV_NAME, buf.getvalue().encode())
        write_bytes(out / RESULTS_NAME, text.encode())

    @classmethod
    def load(cls, path: Path) -> Results:
        """Read a ``results.json`` (or the folder holding one).

        Raises:
            FileNotFoundError: no results file at ``path``.
            ValueError: a file that is not an autoenc evaluation result.
        """
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no evaluation results at {path}")
        try:
            doc = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{path} is not an autoenc evaluation result (format {FORMAT!r})")
        recs = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in doc["records"]]
        return cls(dict(doc["meta"]), recs)

    def select(self, **where: Any) -> list[dict[str, Any]]:
        """Records whose fields equal every ``where`` value."""
        return [r for r in self.records if all(r.get(k) == v for k, v in where.items())]

    def methods(self, role: str | None = None) -> list[str]:
        """Method names in first-seen order (optionally of one role)."""
        seen: dict[str, None] = {}
        for r in self.records:
            if role is None or r["role"] == role:
                seen.setdefault(str(r["method"]), None)
        return list(seen)


def column(records: Iterable[Mapping[str, Any]], key: str) -> np.ndarray:
    """One column as float64 (missing → NaN)."""
    return np.array([float(r.get(key, math.nan)) for r in records], dtype=np.float64)


def save_gallery(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Reconstructions kept for the gallery, as uint16 codes in one compressed ``.npz``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **dict(arrays))  # type: ignore[arg-type]
    write_bytes(path, buf.getvalue())


def load_gallery(path: Path) -> dict[str, np.ndarray]:
    """Inverse of :func:`save_gallery`; an empty dict when the file is missing."""
    if not Path(path).is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
