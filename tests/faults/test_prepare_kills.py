# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Kill -9 batteries of ``autoenc prepare`` redoing a complete dataset (issue 12, item 9).

A complete dataset (window -25..5 dB) is redone with ``--db-window -20,0``, with and without
``--resume``, and killed:

* at every file-system change the run makes (``prepare_kill_driver.py``: creating, syncing,
  renaming or deleting a file), one kill per run;
* at spread delays and just after its manifest goes (polled), running the real
  ``autoenc prepare`` entry point on larger scenes.

After every kill: either ``manifest.json`` is absent, or the dataset it describes is complete
and consistent (every shard and mask it lists exists with its size and hash, and the manifest
is the old or the new one). Then a plain re-run (with the new window, or after every other kill
with the old one) must make that dataset bit-identical to an uninterrupted run, with no temp
file of the killed run left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prepare_fixtures import sigma0_scenes

from autoenc.data.dataset_format import read_manifest, validate_shards
from autoenc.data.prepare import PrepareConfig, prepare

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]

DRIVER = Path(__file__).with_name("prepare_kill_driver.py")
OLD, NEW = (-25.0, 5.0), (-20.0, 0.0)


def _args(inputs: Path, out: Path, resume: bool, patch: int, shard: int) -> list[str]:
    return [str(inputs), "--out", str(out), "--quiet", "--patch-size", str(patch),
            "--min-std-db", "0", "--shard-size", str(shard), f"--db-window={NEW[0]},{NEW[1]}",
            "--resume" if resume else "--no-resume"]  # fmt: skip


def _cfg(window: tuple[float, float], patch: int, shard: int) -> PrepareConfig:
    return PrepareConfig(patch_size=patch, min_std_db=0.0, shard_size=shard, db_window=window)


def _fingerprint(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["file"], s["sha256"], s["mask_sha256"]) for s in m["shards"]]


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.tmp")]


def _check_after_kill(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """'absent' or 'old'/'new' when the invariant holds; raises AssertionError otherwise."""
    if not (out / "manifest.json").exists():
        return "absent"
    m = read_manifest(out)
    validate_shards(out, m, check_hash=True)  # every listed shard and mask, size and hash
    for s in m["shards"]:
        assert (out / s["mask_file"]).stat().st_size == s["mask_nbytes"]
    if _fingerprint(m) == _fingerprint(old) and m["normalisation"] == old["normalisation"]:
        return "old"
    assert _fingerprint(m) == _fingerprint(new), "a manifest that is neither run's"
    assert m["normalisation"] == new["normalisation"]
    return "new"


def _recover(
    inputs: Path,
    out: Path,
    want: dict[str, Any],
    patch: int,
    shard: int,
    window: tuple[float, float] = NEW,
) -> None:
    """A plain re-run with ``window`` makes ``want`` exactly, leaving no temp file behind."""
    prepare([inputs], out, _cfg(window, patch, shard))
    m = read_manifest(out)
    validate_shards(out, m, check_hash=True)
    assert _fingerprint(m) == _fingerprint(want)
    assert not _temps(out), _temps(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """3 scenes of 80x72 px; a pristine old dataset and the new one an unkilled run makes."""
    root = tmp_path_factory.mktemp("kills")
    inputs = root / "in"
    sigma0_scenes(inputs, 3, seed=8)
    pristine = root / "pristine"
    prepare([inputs], pristine, _cfg(OLD, 16, 8))
    new = root / "new"
    prepare([inputs], new, _cfg(NEW, 16, 8))
    return {
        "inputs": inputs,
        "pristine": pristine,
        "old": read_manifest(pristine),
        "new": read_manifest(new),
    }


def _driver(kill_at: int, out: Path, count: Path, args: list[str]) -> int:
    cmd = [sys.executable, str(DRIVER), str(kill_at), str(count), "--", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode


@pytest.mark.parametrize("resume", [False, True], ids=["no-resume", "resume"])
def test_kill_at_every_change(resume: bool, tiny: dict[str, Any], tmp_path: Path) -> None:
    """One kill -9 at each file-system change of a redo; the invariant holds after each."""
    count = tmp_path / "count"
    work = tmp_path / "ds"
    shutil.copytree(tiny["pristine"], work)
    args = _args(tiny["inputs"], work, resume, 16, 8)
    assert _driver(0, work, count, args) == 0
    points = int(count.read_text())
    assert _fingerprint(read_manifest(work)) == _fingerprint(tiny["new"])
    seen: dict[str, int] = {"absent": 0, "old": 0, "new": 0}
    for k in range(1, points + 1):
        shutil.rmtree(work)
        shutil.copytree(tiny["pristine"], work)
        rc = _driver(k, work, count, args)
        assert rc == -signal.SIGKILL, f"kill point {k}: exit {rc}"
        seen[_check_after_kill(work, tiny["old"], tiny["new"])] += 1
        # Finishing the new run, or going back to the old window: resume must not reuse a
        # scene record whose shards the killed run had begun to rewrite.
        back = k % 2 == 1
        want = tiny["old"] if back else tiny["new"]
        _recover(tiny["inputs"], work, want, 16, 8, OLD if back else NEW)
    report = {"mode": "resume" if resume else "no-resume", "kills": points, **seen}
    print(json.dumps({**report, "violations": 0}))
    assert seen["absent"] > 0 and seen["old"] > 0  # the battery reached both sides


def test_kill_real_cli_at_delays(tmp_path: Path) -> None:
    """The real ``autoenc prepare --no-resume``, killed at 6 delays across its run and at 6
    moments after its manifest is seen to go (polling the folder)."""
    inputs = tmp_path / "in"
    sigma0_scenes(inputs, 4, seed=9, h=512, w=512)
    pristine = tmp_path / "pristine"
    prepare([inputs], pristine, _cfg(OLD, 32, 16))
    ref = tmp_path / "ref"
    prepare([inputs], ref, _cfg(NEW, 32, 16))
    old, new = read_manifest(pristine), read_manifest(ref)
    cmd = [str(Path(sys.executable).with_name("autoenc")), "prepare"]
    work = tmp_path / "ds"
    cmd += _args(inputs, work, False, 32, 16)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shutil.copytree(pristine, work)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    duration = time.perf_counter() - t0
    seen: dict[str, int] = {"absent": 0, "old": 0, "new": 0}
    kills = 0
    for i in range(12):
        shutil.rmtree(work)
        shutil.copytree(pristine, work)
        proc = subprocess.Popen(cmd, env=env)
        if i < 6:
            time.sleep(duration * (0.3 + 0.12 * i))
        else:  # the redo's first change, then a little later
            while (work / "manifest.json").exists() and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(duration * 0.05 * (i - 6))
        proc.send_signal(signal.SIGKILL)
        kills += proc.wait() == -signal.SIGKILL
        seen[_check_after_kill(work, old, new)] += 1
        _recover(inputs, work, new, 32, 16)
    print(json.dumps({"mode": "cli delays", "kills": kills, **seen, "violations": 0}))
    assert kills >= 8 and seen["absent"] >= 4
