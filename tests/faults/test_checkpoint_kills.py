# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""kill -9 of ``autoenc fit`` during checkpoint writes, TMPDIR on another filesystem (issue 12.1).

Each round resumes the same run (``--ckpt_path last --allow-fresh``) as a subprocess with TMPDIR
on /dev/shm (tmpfs; the run folder is on the test's own filesystem), polls the checkpoint folder
and sends SIGKILL at a chosen moment: as a writer's temp file appears (plus a delay from
:data:`DELAYS`, i.e. while serialising or fsyncing) or right after ``last.ckpt`` was replaced.
After every kill: nothing in TMPDIR, ``last.ckpt`` (once there is one) is a complete, finite,
resumable checkpoint whose step never goes back, and ``last.ckpt`` never changed size under the
same inode (the old cross-filesystem move truncated it in place). A final run resumes to the end:
exit 0, no temp files left, exactly one best checkpoint. The counts are printed.

Full-size residual network (a 49 MB checkpoint, as in the issue) on the tiny dataset; about
12 s per round on 2 CPU cores. ``AUTOENC_FAULT_KILLS`` sets the number of rounds (default 12).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autoenc.checkpoint_io import TEMP_INFIX, nonfinite_tensors, read_checkpoint

pytestmark = pytest.mark.faults

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KILLS = int(os.environ.get("AUTOENC_FAULT_KILLS", "12"))
DELAYS = (0.0, 0.002, 0.01, 0.03, 0.08, 0.2)  # after the chosen temp file appears
ROUND_TIMEOUT = 180.0


def _fit(root: Path, max_steps: int) -> list[str]:
    return [
        sys.executable, "-m", "autoenc", "fit",
        "--config", str(CONFIGS / "residual.yaml"),
        f"--data.root={root}",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--data.crop_size=null",
        f"--trainer.max_steps={max_steps}",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.accelerator=cpu",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--checkpoint.monitor=null",  # best and last written at every validation (every epoch)
        "--ckpt_path=last",
        "--allow-fresh",
    ]  # fmt: skip


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if TEMP_INFIX in p.name] if folder.is_dir() else []


def test_kill9_during_checkpoint_writes_never_loses_last_ckpt(
    tiny_root: Path, tmp_path: Path
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is not another filesystem here")
    tmpdir = Path(tempfile.mkdtemp(prefix="autoenc-kill-tmpdir-", dir=shm))
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    folder = tmp_path / "lightning_logs" / "residual" / "checkpoints"
    last = folder / "last.ckpt"
    counts = {
        "kills": 0, "kills_with_temp_present": 0, "kills_after_last_replaced": 0,
        "last_ckpt_checked": 0, "last_ckpt_loadable_and_finite": 0, "in_place_changes": 0,
        "files_in_tmpdir": 0, "resumes_that_advanced": 0,
    }  # fmt: skip
    steps: list[int] = []
    try:
        for round_ in range(KILLS):
            after_replace = round_ % 4 == 3  # every 4th round: kill just after a commit
            delay = DELAYS[round_ % len(DELAYS)]
            # Each validation writes best-*.ckpt then last.ckpt, and a resumed run first
            # rewrites both at the step it resumed from: the 3rd to 6th temp file of a round
            # is a best or a last.ckpt being written beside a complete last.ckpt.
            nth_temp = 3 + round_ % 4
            replaced = 0
            log = (tmp_path / f"round{round_}.log").open("wb")
            proc = subprocess.Popen(
                _fit(tiny_root, 100_000), cwd=tmp_path, env=env, stdout=log, stderr=log
            )
            seen = _stat(last)
            temp_seen = False
            temps_before: set[str] = set()
            appeared = 0
            deadline = time.monotonic() + ROUND_TIMEOUT
            try:
                while True:
                    died = proc.poll() is not None
                    assert not died, (tmp_path / f"round{round_}.log").read_text()[-3000:]
                    assert time.monotonic() < deadline, "no checkpoint write within the timeout"
                    now = _stat(last)
                    if now and seen and now[0] == seen[0] and now[1] != seen[1]:
                        counts["in_place_changes"] += 1  # same inode, new size: a torn write
                    if now and now[0] != (seen or (0,))[0]:
                        replaced += 1  # a new inode: os.replace committed a new last.ckpt
                    if after_replace and replaced >= 2:
                        counts["kills_after_last_replaced"] += 1
                        break
                    seen = now or seen
                    names = {p.name for p in _temps(folder)}
                    appeared += len(names - temps_before)
                    temps_before = names
                    if not after_replace and appeared >= nth_temp:
                        temp_seen = True
                        time.sleep(delay)
                        break
                    time.sleep(0.001)
                counts["kills_with_temp_present"] += bool(temp_seen and _temps(folder))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                counts["kills"] += 1
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
            stray = [p for p in tmpdir.iterdir() if p.is_file()]  # (torch may keep cache dirs)
            counts["files_in_tmpdir"] += len(stray)
            assert stray == [], stray
            if last.exists():
                counts["last_ckpt_checked"] += 1
                ckpt = read_checkpoint(last)  # complete: a truncated file raises here
                assert nonfinite_tensors(ckpt["state_dict"]) == []
                assert ckpt["optimizer_states"] and ckpt["loops"]
                counts["last_ckpt_loadable_and_finite"] += 1
                step = int(ckpt["global_step"])
                if steps and step > steps[-1]:
                    counts["resumes_that_advanced"] += 1
                assert not steps or step >= steps[-1], f"last.ckpt went back: {steps} -> {step}"
                steps.append(step)
        target = (steps[-1] if steps else 0) + 4
        done = subprocess.run(
            _fit(tiny_root, target), cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=ROUND_TIMEOUT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert read_checkpoint(last)["global_step"] == target
        assert _temps(folder) == []
        assert len(list(folder.glob("best-*.ckpt"))) == 1, sorted(os.listdir(folder))
        assert [p for p in tmpdir.iterdir() if p.is_file()] == []
    finally:
        print(f"checkpoint kill battery (TMPDIR on /dev/shm): {counts}, global steps {steps}")
        shutil.rmtree(tmpdir, ignore_errors=True)
    assert counts["kills"] == KILLS
    assert counts["in_place_changes"] == 0
    assert counts["last_ckpt_loadable_and_finite"] == counts["last_ckpt_checked"] > 0
