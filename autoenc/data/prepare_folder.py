# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The output folder of ``autoenc prepare``: ownership, one writer at a time, the manifest first.

Invariants kept here:

* a folder is written by one ``prepare`` at a time: an exclusive ``flock`` on
  ``.prepare/lock`` is held for the whole run and released by the kernel when the process
  ends, however it ends (kill -9 included);
* holding the lock, every hidden temp file (``.<name>.<random>.tmp``, the names of
  :func:`autoenc.data.dataset_format.write_npy` and friends) is a leftover of a dead run, and
  is removed;
* :meth:`PrepareFolder.retract_manifest` unlinks ``manifest.json`` and fsyncs the folder before
  anything of an earlier dataset is changed, so a folder with a manifest always holds the
  complete dataset it describes; likewise :meth:`PrepareFolder.drop_record` removes a scene's
  record (which resume trusts) before its shards change.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from autoenc.atomic import fsync_dir
from autoenc.data.dataset_format import MANIFEST_NAME, atomic_write
from autoenc.data.scan import ScanResult

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, so no clean-up of temp files
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STATE_DIR = ".prepare"
LOCK_NAME = "lock"
#: Folders of a prepared dataset that hold files written through temp files.
DATA_DIRS: tuple[str, ...] = ("shards", "masks")
STATE_SUBDIRS: tuple[str, ...] = ("scan", "scenes")


class FolderBusyError(FileExistsError):
    """Another ``autoenc prepare`` holds the folder's lock."""


class PrepareFolder:
    """The output folder of one run, held (locked) between ``__enter__`` and ``__exit__``."""

    def __init__(self, out: Path) -> None:
        """Describe ``out``; nothing is created or checked until the ``with`` block."""
        self.out = Path(out)
        self.state = self.out / STATE_DIR
        self._fd: int | None = None
        self._retracted = False
        self.stale_removed: list[Path] = []

    def __enter__(self) -> PrepareFolder:
        """Check that the folder is prepare's (or new), lock it and remove dead runs' temps.

        Raises:
            FileExistsError: ``out`` is a file, or a non-empty folder that prepare did not write.
            FolderBusyError: another run holds the lock.
        """
        out = self.out
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"output {out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not self.state.is_dir():
            raise FileExistsError(
                f"output {out} is not empty and was not written by autoenc prepare; "
                "choose a new folder"
            )
        for sub in STATE_SUBDIRS:
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        self._lock()
        if fcntl is not None:  # without a lock a temp file may belong to a live run
            self._remove_stale_temps()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release the lock."""
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        path = self.state / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(
                f"output {self.out} is being written by another autoenc prepare "
                f"(it holds {path}); wait for it to end or choose another folder"
            ) from None
        self._fd = fd

    def _remove_stale_temps(self) -> None:
        dirs = [self.out, self.state, *(self.state / s for s in STATE_SUBDIRS)]
        dirs += [self.out / d for d in DATA_DIRS]
        for d in dirs:
            for f in sorted(d.glob(".*.tmp")) if d.is_dir() else ():
                if f.is_file():
                    f.unlink(missing_ok=True)
                    self.stale_removed.append(f)
        if self.stale_removed:
            log.info("removed %d temp file(s) of an interrupted run", len(self.stale_removed))

    def retract_manifest(self) -> None:
        """Unlink ``manifest.json`` durably (folder fsynced) unless already done in this run.

        Call it before the first change to anything an earlier manifest lists.
        """
        if self._retracted:
            return
        path = self.out / MANIFEST_NAME
        if path.exists():
            path.unlink()
            fsync_dir(self.out)
        self._retracted = True

    def drop_record(self, path: Path) -> None:
        """Unlink a scene record durably; call it before that scene's shards change."""
        if path.exists():
            path.unlink()
            fsync_dir(path.parent)

    def clear_dataset(self) -> None:
        """Delete the shards, masks and per-scene records of an earlier run (``--no-resume``).

        The manifest is retracted first.
        """
        self.retract_manifest()
        for sub in DATA_DIRS:
            shutil.rmtree(self.out / sub, ignore_errors=True)
        shutil.rmtree(self.state / "scenes", ignore_errors=True)
        (self.state / "scenes").mkdir(parents=True, exist_ok=True)

    def load_scan(self, scene_id: str, key: dict[str, Any]) -> ScanResult | None:
        """The cached pass-1 result of a scene, if made with the same ``key``."""
        try:
            with np.load(self.state / "scan" / f"{scene_id}.npz", allow_pickle=False) as z:
                if json.loads(str(z["key"])) != key:
                    return None
                counts = json.loads(str(z["counts"]))
                return ScanResult(z["hist"], z["first"], z["last"], counts)
        except (OSError, ValueError, KeyError):
            return None

    def save_scan(self, scene_id: str, key: dict[str, Any], scan: ScanResult) -> None:
        """Cache a pass-1 result (atomically)."""
        buf = io.BytesIO()
        np.savez(
            buf,
            hist=scan.hist,
            first=scan.first,
            last=scan.last,
            key=np.array(json.dumps(key)),
            counts=np.array(json.dumps(scan.counts)),
        )
        atomic_write(self.state / "scan" / f"{scene_id}.npz", lambda f: f.write(buf.getvalue()))

    def shards_intact(self, record: dict[str, Any]) -> bool:
        """Every shard and mask of a scene record exists with its recorded size."""
        return all(
            (self.out / s[f]).is_file() and (self.out / s[f]).stat().st_size == s[n]
            for s in record["shards"]
            for f, n in (("file", "nbytes"), ("mask_file", "mask_nbytes"))
        )
