# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Run ``autoenc prepare`` and kill -9 itself just before its N-th file-system change.

``python prepare_kill_driver.py N COUNT_FILE -- <prepare arguments>``: every call that changes
the file system (``os.open`` creating a file, ``os.fsync``, ``os.replace``/``rename``,
``os.unlink``/``remove``/``rmdir``) is numbered from 1; at number ``N`` the process sends itself
SIGKILL before doing it (``N = 0``: never). The number of calls made is written to
``COUNT_FILE`` when the run ends normally, so a test knows every point there is to kill at.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _instrument(kill_at: int) -> list[int]:
    calls = [0]

    def wrap(name: str, changes: Callable[..., bool] = lambda *a, **k: True) -> None:
        real = getattr(os, name)

        def hooked(*a: Any, **k: Any) -> Any:
            if changes(*a, **k):
                calls[0] += 1
                if calls[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)

        setattr(os, name, hooked)

    wrap("open", lambda path, flags, *a, **k: bool(flags & os.O_CREAT))
    for name in ("fsync", "replace", "rename", "unlink", "remove", "rmdir"):
        wrap(name)
    return calls


def main() -> int:
    """Entry point (see the module docstring)."""
    kill_at, count_file = int(sys.argv[1]), Path(sys.argv[2])
    args = sys.argv[sys.argv.index("--") + 1 :]
    from autoenc.data.prepare_cli import prepare_main

    calls = _instrument(kill_at)
    code = prepare_main(args)
    count_file.write_text(str(calls[0]))
    return code


if __name__ == "__main__":
    sys.exit(main())
