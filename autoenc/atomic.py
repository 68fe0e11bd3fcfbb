# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Atomic output files: a temp file beside the target, fsync, then one rename; no clobbering.

Every writer of ``compress``/``decompress`` output (the ``.aec`` container, the GeoTIFF) goes
through here, so they share one set of rules (the checkpoint writer and the dataset writer use
:func:`fsync_dir` and :func:`pid_alive`):

* the temp file is ``.<name>.<host>-<pid>.<random>.tmp`` in the target's folder (same
  filesystem, so the final rename is atomic); stale ones left by killed runs of this host
  (their pid is gone) are removed by the next run that writes the same target;
* :func:`commit` renames the complete, fsynced temp file onto the target. With
  ``overwrite=False`` it never replaces an existing file, not even one created meanwhile (a
  hard link is made instead of a rename; where the filesystem has no hard links, an existence
  check just before the rename);
* errors name the target and its folder, never the hidden temp file.

Pure standard library: the container stays importable without torch or rasterio.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"


class OutputExistsError(ValueError):
    """The output exists and ``--overwrite`` was not given (the message names it)."""


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one file: the same path, a symlink or a hard link."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve()


def check_output(target: Path, overwrite: bool) -> None:
    """Refuse an existing ``target`` unless ``overwrite`` (call before any work is done).

    Raises:
        OutputExistsError: ``target`` exists (a file, a link or anything else).
        IsADirectoryError: ``target`` is a directory (it is never replaced).
    """
    if target.is_dir():
        raise IsADirectoryError(f"output {target} is a directory")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise OutputExistsError(f"output {target} already exists; pass --overwrite to replace it")


def _prefix(target: Path) -> str:
    return f".{target.name}.{_HOST}-"


def clean_stale(target: Path) -> list[Path]:
    """Remove temp files of ``target`` left by dead processes of this host; return them."""
    removed: list[Path] = []
    prefix = _prefix(target)
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            name = entry.name
            if not name.startswith(prefix) or not (name.endswith(".tmp") or ".tmp." in name):
                continue
            pid_text = name[len(prefix) :].split(".", 1)[0]
            if not pid_text.isdigit() or pid_alive(int(pid_text)):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still run (this process, or unknown: yes)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours (EPERM), or cannot tell: keep its file
        return True
    return True


def make_temp(target: Path) -> Path:
    """Create an empty temp file beside ``target`` (its folder is created if needed).

    Raises:
        PermissionError / OSError: naming ``target`` and its folder, not the temp file.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(target)
        fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(target)}{os.getpid()}.", suffix=".tmp",
                                   dir=target.parent)  # fmt: skip
    except OSError as e:
        raise type(e)(
            e.errno, f"cannot write {target}: folder {target.parent} is not writable "
            f"({e.strerror or e})"
        ) from None  # fmt: skip
    os.close(fd)
    return Path(tmp)


def fsync_dir(d: Path) -> None:
    """Persist a rename itself; best effort where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the complete temp file ``tmp`` onto ``target`` atomically (mode 0644).

    Raises:
        OutputExistsError: ``target`` exists and ``overwrite`` is False (``tmp`` is kept for
            the caller to remove).
    """
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
    if overwrite:
        os.replace(tmp, target)
    else:
        try:
            os.link(tmp, target)  # fails if target exists: no window for a race
        except FileExistsError:
            raise OutputExistsError(
                f"output {target} already exists; pass --overwrite to replace it"
            ) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                               errno.EMLINK, errno.ENOSYS):  # fmt: skip
                raise
            check_output(target, False)  # no hard links here: check, then rename
            os.replace(tmp, target)
        else:
            os.unlink(tmp)
    fsync_dir(target.parent)


def write_file(target: Path, write: Callable[[BinaryIO], object], overwrite: bool = True) -> None:
    """Write ``target`` atomically: ``write(f)`` into :func:`make_temp`, fsync, :func:`commit`.

    Nothing is left under ``target``'s name unless ``write`` returned and the data is on disk.
    """
    tmp = make_temp(target)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        commit(tmp, target, overwrite)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
