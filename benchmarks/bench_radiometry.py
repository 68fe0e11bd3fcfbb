# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""What keeping the whole dynamic range costs: exception layer, per-scene offset, header.

A synthetic Sentinel-1 GRD-like σ⁰ scene (``autoenc synth --geotiff``, 512² by default, with
``--bright-fraction`` point targets above +5 dB, 0.1 % by default, and ``--dark-fraction``
calm water below -25 dB, 3 % by default) is compressed with the shipped default codec four ways:

* ``keep`` (the default): valid pixels outside the model's window in the exception layer,
  after the automatic per-scene offset;
* ``keep_as_is``: the same at the scene's own levels (``--offset-db 0``);
* ``clip``: the old behaviour;
* ``uncalibrated``: the same scene times 10^(``--gain-db``/10), an uncalibrated linear-intensity
  product, through the per-scene offset.

For each it reports the file's bpp, the exception layer's count, bytes and bpp, the header's
bytes, the offset, and over the valid pixels outside the window the largest error in dB after
``decompress`` and how many exceed the 0.5 dB tolerance. Everything runs on the CPU, 1 thread.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_json_argument, machine_info, save_record  # noqa: E402

from autoenc.cli import main as autoenc  # noqa: E402
from autoenc.codec.container import ContainerReader  # noqa: E402

TOLERANCE_DB = 0.5


def _db(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(a.astype(np.float64))


def _run(tif: Path, work: Path, name: str, *extra: str) -> dict[str, Any]:
    aec, back = work / f"{name}.aec", work / f"{name}.tif"
    code = autoenc(["compress", str(tif), "-o", str(aec), "--device", "cpu", "--quiet",
                    "--overwrite", *extra])  # fmt: skip
    assert code == 0, f"compress {name}: exit {code}"
    assert autoenc(["decompress", str(aec), "-o", str(back), "--quiet", "--overwrite"]) == 0
    with ContainerReader(aec) as r:
        header, stat = r.header, {}
        for _, payload in r.chunks(b"STAT"):
            stat = json.loads(payload)
    data = aec.read_bytes()
    (header_bytes,) = struct.unpack("<I", data[10:14])
    with rasterio.open(tif) as f:
        x = f.read(1)
    with rasterio.open(back) as f:
        y = f.read(1)
    valid = np.isfinite(x) & (x > 0)
    d = _db(np.where(valid, x, 1.0))
    off = float(header["input"]["offset_db"])
    lo, hi = (header["preprocessing"]["normalisation"][k] for k in ("vmin_db", "vmax_db"))
    outside = valid & ((d + off < lo) | (d + off > hi))
    err = np.abs(_db(np.where(valid, y, 1.0)) - d)[outside]
    px = x.size
    return {
        "file_bytes": len(data),
        "bpp": len(data) * 8 / px,
        "header_bytes": header_bytes,
        "offset_db": off,
        "outside_px": int(outside.sum()),
        "outside_share": float(outside.sum() / max(valid.sum(), 1)),
        "exceptions": int(stat.get("exceptions", 0)),
        "exception_bytes": int(stat.get("exception_bytes", 0)),
        "exception_bpp": int(stat.get("exception_bytes", 0)) * 8 / px,
        "clipped": int(stat.get("clipped_low", 0)) + int(stat.get("clipped_high", 0)),
        "max_error_outside_db": float(err.max()) if err.size else 0.0,
        "over_tolerance_px": int((err > TOLERANCE_DB).sum()),
        "bright_px": int((valid & (d > 5.0)).sum()),
    }


def main(argv: list[str] | None = None) -> None:
    """Run and print the four cases; write the JSON record."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--bright-fraction", type=float, default=0.001)
    p.add_argument("--dark-fraction", type=float, default=0.03, help="calm water share")
    p.add_argument("--gain-db", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0)
    add_json_argument(p, "radiometry")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synth = ["synth", "--out", str(work / "s"), "--scenes", "1", "--size", str(args.size),
                 "--geotiff", "--bright-fraction", str(args.bright_fraction), "--dark-fraction",
                 str(args.dark_fraction), "--seed", str(args.seed), "--quiet"]  # fmt: skip
        assert autoenc(synth) == 0
        tif = next((work / "s").glob("*.tif"))
        with rasterio.open(tif) as f:
            x, profile = f.read(1), f.profile
        raw = work / "uncalibrated.tif"
        with rasterio.open(raw, "w", **profile) as f:
            f.write((x.astype(np.float64) * 10 ** (args.gain_db / 10)).astype(np.float32), 1)
        cases = {
            "keep": _run(tif, work, "keep"),
            "keep_as_is": _run(tif, work, "as_is", "--offset-db", "0"),
            "clip": _run(tif, work, "clip", "--clip"),
            "uncalibrated": _run(raw, work, "uncal"),
        }
    record = {"machine": machine_info(), "args": vars(args), "cases": cases}
    for name, c in cases.items():
        print(f"{name:>12}: {c['bpp']:.4f} bpp ({c['file_bytes']:,} B, header "
              f"{c['header_bytes']} B), offset {c['offset_db']:+.2f} dB; {c['outside_px']:,} px "
              f"outside the window ({c['outside_share']:.2%}; {c['bright_px']} above +5 dB): "
              f"exceptions {c['exceptions']:,} = {c['exception_bytes']:,} B = "
              f"{c['exception_bpp']:.4f} bpp, clipped {c['clipped']:,}; max error there "
              f"{c['max_error_outside_db']:.3f} dB, {c['over_tolerance_px']} px over "
              f"{TOLERANCE_DB} dB")  # fmt: skip
    save_record(args.json, "radiometry", record)


if __name__ == "__main__":
    main()
