# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""What every benchmark records: the machine, and an atomically written JSON file."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch


def machine_info() -> dict[str, Any]:
    """Platform, CPU and library versions and the date, for the JSON record."""
    import lightning

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        affinity = os.cpu_count() or 0
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "lightning": lightning.__version__,
        "hostname": socket.gethostname(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def default_json_path(name: str) -> Path:
    """``benchmarks/results/<name>-<host or cpu>.json``."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "_", socket.gethostname()) or f"cpu{os.cpu_count()}"
    return Path(__file__).resolve().parent / "results" / f"{name}-{host}.json"


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write JSON to a temporary file, fsync, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(record, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. PATH is a folder: leave no stray temp file
        raise


def add_json_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--json [PATH]``: also write the record (bare flag: :func:`default_json_path`)."""
    parser.add_argument(
        "--json",
        nargs="?",
        const="auto",
        default=None,
        metavar="PATH",
        help=f"also write the numbers as JSON to PATH (bare --json: "
        f"benchmarks/results/{name}-<host>.json); default: no file",
    )


def save_record(json_arg: str | None, name: str, record: dict[str, Any]) -> None:
    """Write ``record`` where ``--json`` asked, and say where."""
    if json_arg is None:
        return
    path = default_json_path(name) if json_arg == "auto" else Path(json_arg)
    write_json(path, record)
    print(f"wrote {path}")
