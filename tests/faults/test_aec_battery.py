# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Issue 12's batteries for ``.aec`` files (``make faults``; ``pytest -m faults``).

* >= 500 crafted files, every CRC right (``aec_craft.crafted_cases``): header fields of the
  wrong type, huge, negative, non-finite or missing; chunk payloads flipped, cut, dropped,
  duplicated, swapped; MASK zlib bombs; entropy-coded bytes flipped. Each must exit 4 (or 0,
  2, 3), never 1 or a traceback; an exit 0 must write only finite values (the scene has none
  other), and no failure may leave an output or a temp file.
* >= 1,000 damaged files (flips, truncations, insertions; CRCs not fixed): every one exit 4.
* Peak RSS of ``decompress`` in a fresh process per file: on any crafted file at most 2x that
  of the valid file they were made from (the issue's 1 GiB MASK bomb, about 1 MB of file, took
  2.5 GB before).
* ``compress`` killed with SIGKILL while writing leaves a temp file that the next run removes.

The counts are printed (``make faults`` shows them: ``-rA``).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aec_craft as ac
import numpy as np
import pytest
import rasterio

from autoenc.cli import main

pytestmark = [pytest.mark.faults, pytest.mark.usefixtures("one_thread")]

N_CRAFTED = 600
N_DAMAGED = 1200


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return ac.tiny_case(tmp_path_factory.mktemp("aec_battery"))


def _run_all(
    cases: list[tuple[str, bytes]], ckpt: Path, folder: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[collections.Counter[int], list[str]]:
    """Decompress every case in-process; (exit-code counts, problems found)."""
    inp, outdir = folder / "in", folder / "out"
    inp.mkdir()
    outdir.mkdir()
    bad, out = inp / "bad.aec", outdir / "out.tif"
    codes: collections.Counter[int] = collections.Counter()
    problems = []
    capsys.readouterr()
    for name, data in cases:
        bad.write_bytes(data)
        out.unlink(missing_ok=True)
        try:
            code = main(ac.decompress_args(bad, out, ckpt))
        except BaseException as e:  # noqa: BLE001 - counted, reported
            problems.append(f"{name}: raised {type(e).__name__}: {e}")
            continue
        err = capsys.readouterr().err
        codes[code] += 1
        if code not in (0, 2, 3, 4) or "Traceback" in err:
            problems.append(f"{name}: exit {code}: {err.strip()[-300:]}")
        elif code == 0:
            with rasterio.open(out) as f:
                if not np.isfinite(f.read(1)).all():
                    problems.append(f"{name}: exit 0 with non-finite values")
        elif err.count("\n") != 1 or not err.startswith("autoenc: error: "):
            problems.append(f"{name}: not a one-line error: {err!r}")
        if code != 0 and os.listdir(outdir):
            problems.append(f"{name}: exit {code} left {os.listdir(outdir)}")
        if sorted(os.listdir(inp)) != ["bad.aec"]:
            problems.append(f"{name}: input folder now holds {os.listdir(inp)}")
    return codes, problems


def _battery(
    label: str,
    cases: list[tuple[str, bytes]],
    ckpt: Path,
    folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> collections.Counter[int]:
    """Run :func:`_run_all`, print its counts (kept in the report: ``-rA``), assert no problem."""
    t0 = time.perf_counter()
    codes, problems = _run_all(cases, ckpt, folder, capsys)
    seconds = time.perf_counter() - t0
    capsys.readouterr()  # the decoders' own output; what is printed next stays in the report
    print(f"\n[{label}] {len(cases)} files in {seconds:.0f} s: exit codes "
          f"{dict(sorted(codes.items()))}; {len(problems)} problems")  # fmt: skip
    for p in problems[:20]:
        print("   ", p)
    assert not problems
    return codes


def test_crafted_files_with_valid_crcs_never_trace_back(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, _, aec = case
    cases = list(ac.crafted_cases(aec.read_bytes(), N_CRAFTED, seed=12))
    assert len(cases) >= 500
    codes = _battery("crafted, CRCs fixed", cases, ckpt, tmp_path, capsys)
    assert codes[4] >= 0.5 * len(cases)


def test_damaged_files_are_all_corrupt(
    case: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt, _, aec = case
    data = aec.read_bytes()
    cases = [(n, d) for n, d in ac.damaged_cases(data, N_DAMAGED, seed=13) if d != data]
    assert len(cases) >= 1000
    codes = _battery("damaged", cases, ckpt, tmp_path, capsys)
    assert codes == {4: len(cases)}


# VmHWM: the peak RSS of this process image (ru_maxrss would include the forking parent's).
_RSS = """
import sys
from autoenc.cli import main
code = main(sys.argv[1:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print("RESULT", code, hwm)
"""


def _peak_rss(aec: Path, out: Path, ckpt: Path) -> tuple[int, int]:
    """(exit code, peak RSS in KiB) of ``autoenc decompress`` in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", _RSS, *ac.decompress_args(aec, out, ckpt, "--overwrite")]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT"))
    _, code, rss = line.split()
    return int(code), int(rss)


def test_decompress_memory_on_crafted_files(case: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ckpt, _, aec = case
    data = aec.read_bytes()
    raw, chunks = ac.parse(data)
    i = next(i for i, (k, _) in enumerate(chunks) if k == b"MASK")
    files = {
        "mask bomb 1 GiB": ac.build(raw, [*chunks[:i], (b"MASK", ac.mask_bomb(0, 0, 1 << 30)),
                                          *chunks[i + 1 :]]),
        "invalid-values bomb 1 GiB": ac.build(
            raw, [*chunks[:i], (b"MASK", ac.invalid_bomb(chunks[i][1], 1 << 30)), *chunks[i + 1 :]]
        ),
    }  # fmt: skip
    header = json.loads(raw)
    huge = {**header, "scene": {**header["scene"], "height": 1 << 20, "width": 1 << 20}}
    files["huge scene"] = ac.with_header(data, huge)
    for name, crafted in list(ac.crafted_cases(data, 400, seed=21))[::20]:
        files[name] = crafted
    base_code, base = _peak_rss(aec, tmp_path / "valid.tif", ckpt)
    assert base_code == 0
    worst = ("", 0)
    rows = []
    for name, crafted in files.items():
        path = tmp_path / "crafted.aec"
        path.write_bytes(crafted)
        code, rss = _peak_rss(path, tmp_path / "out.tif", ckpt)
        rows.append(f"{name} ({len(crafted):,} B): exit {code}, {rss / 1024:.0f} MiB")
        worst = max(worst, (name, rss), key=lambda t: t[1])
        assert code in (0, 2, 3, 4), name
    ratio = worst[1] / base
    print(f"\n[rss] valid file ({len(data):,} B): {base / 1024:.0f} MiB; worst of {len(files)} "
          f"crafted: {worst[0]!r}, {worst[1] / 1024:.0f} MiB ({ratio:.2f}x)")  # fmt: skip
    for r in rows:
        print("   ", r)
    assert worst[1] <= 2 * base


_KILLED = """
import sys
from autoenc.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_compress_killed_while_writing_leaves_nothing_behind_the_next_run(
    case: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ckpt = case[0]
    src = ac.write_scene(tmp_path / "big.tif", ac.sigma0((1024, 1024)))
    outdir = tmp_path / "out"
    outdir.mkdir()
    dst = outdir / "big.aec"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", _KILLED, *ac.compress_args(src, dst, ckpt)],
                             env=env, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if any(n.endswith(".tmp") and os.path.getsize(outdir / n) > 0
                   for n in os.listdir(outdir)):  # fmt: skip
                p.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.02)
        p.wait(timeout=60)
        assert not dst.exists()  # never a partial file under the final name
    left = [n for n in os.listdir(outdir) if n.endswith(".tmp")]
    print(f"\n[kill -9] {kills} kills while writing; {len(left)} temp file(s) left, "
          "removed by the next run")  # fmt: skip
    assert kills == 3 and len(left) == 1  # each run removed the temp file of the one before
    assert main(ac.compress_args(src, dst, ckpt)) == 0
    assert sorted(os.listdir(outdir)) == ["big.aec"]
