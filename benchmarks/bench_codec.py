# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""``autoenc`` compress/decompress speed, real bpp, PSNR and peak memory vs. Pillow JPEG 2000.

A synthetic Sentinel-1-like scene (float32 linear σ⁰, ``write_scene(kind="intensity")``: CRS +
transform, untagged zero borders, NaN holes) is written per size (default 3072² and 4096²,
``--sizes``: both fill compress's tile batches, see below). What is measured:

* **autoenc**: ``compress_scene`` (GeoTIFF -> ``.aec``) and ``decompress_scene`` (``.aec`` ->
  GeoTIFF), each in a fresh Python process per run on the CPU, with the checkpoint ``--ckpt``
  and ``--tile`` (default: the model's, 1024 for the wavelet codec); decompress with its default
  decode workers (one forked process per core, :mod:`autoenc.codec.tile_rows`), whose CPU time
  is counted and whose peak RSS is added (this process's plus each worker at the largest
  worker's peak: an upper bound, pages shared by the fork counted once per worker). By default
  (``--mode window``) it codes the model's dB window only, as
  JPEG 2000 does here (``--clip --offset-db 0``: values outside the window clipped, like the
  uint16 codes JPEG 2000 gets); ``--mode keep`` measures the codec's defaults instead. The
  timed span is the library call alone (GeoTIFF read/write, the container and, in compress,
  the receptive-field probe ``receptive_halo`` that runs once per scene, ~0.4 s, included);
  the imports and ``load_codec`` are timed separately and reported, not
  counted. Wall and CPU time (all threads of the process, torch's default intra-op threads),
  MPix/s of both, and peak RSS (``VmHWM`` of ``/proc/self/status``, imports included). The best
  of ``--repeats`` runs (least wall time) is kept; peak RSS is the largest over the runs.
* **bpp and quality** on the largest scene: real bpp = ``.aec`` bytes x 8 / pixels (header,
  validity masks and the exact values of invalid pixels included; the TILE-only share is
  reported too), and PSNR on the model's dB window (``autoenc_preprocessing.normalisation`` of
  the checkpoint: dB = 10·log10(max(I, noise floor)), clipped to [vmin, vmax], mapped to [0, 1])
  over the valid pixels of the original (finite and > 0), against the original's unit values.
* **JPEG 2000** (Pillow/OpenJPEG 9/7, ``quality_mode="rates"``, raw codestream ``no_jp2=True``)
  on the same scene and window: the unit values as uint16 codes (0..65535; invalid pixels set
  to the mid code 32768), rate ratio 16 / bpp targeting the autoenc file's bpp, corrected from
  the achieved bytes until within 2 % (at most 4 encodes). Encode (array -> bytes) and decode
  (bytes -> array) are timed in this process (best of ``--repeats``; Pillow encode/decode only,
  the GeoTIFF read and the dB -> code step are timed once and reported apart). Its bytes carry
  no mask and no georeferencing, the autoenc file does: the comparison favours JPEG 2000.

Printed: the table, the ratios autoenc/JPEG 2000 of compress and decompress speed (wall
MPix/s), the PSNR difference at (nearly) equal bpp, and the peak RSS ratio largest/smallest
scene per operation.

Targets: peak RSS flat across scene sizes (bounded memory; ratio <= 1.10: only the output
GeoTIFF's block cache, ``GDAL_CACHEMAX`` = 32 MB, may grow with the width). Speed and PSNR vs.
JPEG 2000 are reported, not judged (they depend on the checkpoint).

Caveat on the compress RSS ratio: ``compress_scene`` runs ``g_a`` on batches of up to
``batch_size`` (by default 1 Mpx of tiles: 4 of 512², 1 of 1024²) same-shape tile windows of one
tile row; the first and last columns have
their own shapes (no halo beyond the scene), so a row fills a batch only with >= 6 tile columns
(>= 3072 px at ``--tile 512``). Below that the batches, hence the activations, are smaller and
the peak is lower: a ratio 4096²/2048² would measure the batch filling up, not growth with
the scene, hence the default sizes. The report prints the largest batch at each size.

Caveat on peak RSS itself: with glibc's default dynamic mmap threshold, identical runs peak
±100 MB apart (seen on decompress at 2048²: 489-683 MB over eight runs), depending on thread
timing and heap fragmentation. ``--stable-rss`` sets ``MALLOC_MMAP_THRESHOLD_=131072`` in the
measured processes (three decompress runs at 2048² then all peaked at 479 MB); the default
measures what a user's process does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_json_argument, machine_info, save_record
from numpy.typing import NDArray
from PIL import Image

from autoenc.codec.container import ContainerReader
from autoenc.codec.scene import encode_batch
from autoenc.data.synth_geotiff import write_scene
from autoenc.sar.geotiff import SceneReader
from autoenc.sar.normalisation import Normalisation, codes_from_unit, unit_from_codes
from autoenc.tiling import TileGrid

NAME = "codec"
DEFAULT_CKPT = "lightning_logs/hyperprior_demo/checkpoints/last.ckpt"
MAKE_CKPT = "autoenc fit --config configs/hyperprior.yaml --config configs/hyperprior_demo.yaml"
TARGET_RSS_RATIO = 1.10
J2K_RATE_TOL = 0.02
J2K_MAX_ENCODES = 4
MID_CODE = 32768
AUTO = "auto"  # --tile / batch size: compress_scene's defaults (the model's tile, 1 Mpx batches)
_STRIP = 512

_HWM = """
def _hwm():
    line = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    return int(line.split()[1]) / 1024
"""
COMPRESS = (
    _HWM
    + """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
import torch
from autoenc.codec.model_io import load_codec
from autoenc.codec.scene import compress_scene
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
codec = load_codec(sys.argv[3], "cpu")
t_load = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
keep = sys.argv[6] == "keep"  # the codec's defaults; else like for like with JPEG 2000
auto = lambda v: None if v == "auto" else int(v)  # the codec's defaults
st = compress_scene(Path(sys.argv[1]), Path(sys.argv[2]), codec, tile=auto(sys.argv[4]),
                    batch_size=auto(sys.argv[5]), exceptions="keep" if keep else "clip",
                    offset_db="auto" if keep else 0.0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "import_s": t_import, "load_s": t_load,
                  "peak_rss_mb": _hwm(), "bpp": st.bpp, "file_bytes": st.file_bytes,
                  "clipped_low": st.clipped_low, "clipped_high": st.clipped_high,
                  "invalid": st.invalid, "threads": torch.get_num_threads()}))
"""
)
DECOMPRESS = (
    _HWM
    + """
import json, resource, sys, time
t0 = time.perf_counter()
from pathlib import Path
import torch
from autoenc.codec.model_io import load_codec
from autoenc.codec.scene import decompress_scene
from autoenc.codec.tile_rows import default_workers
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
if len(sys.argv) > 4 and sys.argv[4] == "onnxruntime":  # an `autoenc export --onnx` folder
    from autoenc.codec.onnx import load_onnx
    codec = load_onnx(sys.argv[3])
else:
    codec = load_codec(sys.argv[3], "cpu")
t_load = time.perf_counter() - t0
t0, c0 = time.perf_counter(), time.process_time()
st = decompress_scene(Path(sys.argv[1]), Path(sys.argv[2]), lambda header: codec)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the decode workers (ended by now)
workers = default_workers() if getattr(codec.model, "fork_safe", True) else 0
print(json.dumps({"wall_s": wall, "cpu_s": cpu + kids.ru_utime + kids.ru_stime,
                  "main_cpu_s": cpu, "import_s": t_import, "load_s": t_load,
                  "peak_rss_mb": _hwm(), "workers": workers,
                  "workers_peak_rss_mb": kids.ru_maxrss / 1024 if workers else 0.0,
                  "threads": torch.get_num_threads()}))
"""
)
BASELINE = (
    _HWM
    + """
import json, sys
from autoenc.codec.model_io import load_codec
import autoenc.codec.scene
load_codec(sys.argv[1], "cpu")
print(json.dumps({"peak_rss_mb": _hwm()}))
"""
)


class ChildError(RuntimeError):
    """A measured subprocess failed; the message is the last line of its stderr."""


#: Extra environment of the measured subprocesses (``--stable-rss`` fills it).
CHILD_ENV: dict[str, str] = {}
STABLE_RSS_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _python(code: str, *args: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **CHILD_ENV},
    )
    if res.returncode:
        lines = [s for s in res.stderr.strip().splitlines() if s.strip()]
        raise ChildError(lines[-1] if lines else f"exit code {res.returncode}")
    out = dict(json.loads(res.stdout.strip().splitlines()[-1]))
    out["process_s"] = time.perf_counter() - t0
    return out


def _best(runs: list[dict[str, Any]], mpix: float) -> dict[str, Any]:
    """The run of least wall time, with the largest peak RSS over the runs.

    ``peak_rss_mb_max`` counts decode workers too: this process's peak plus each worker's at
    the largest worker's peak (an upper bound: pages the workers share with it by ``fork``,
    the model and the libraries, are counted once per worker).
    """
    best = min(runs, key=lambda r: r["wall_s"])
    total = [
        r["peak_rss_mb"] + r.get("workers", 0) * r.get("workers_peak_rss_mb", 0.0) for r in runs
    ]
    return {
        **best,
        "mpix_per_s": mpix / best["wall_s"],
        "mpix_per_cpu_s": mpix / best["cpu_s"],
        "peak_rss_mb_max": max(total),
        "runs": runs,
    }


def measure_autoenc(
    scene: Path,
    work: Path,
    ckpt: Path,
    tile: int | None,
    repeats: int,
    mode: str = "window",
    onnx: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Best-of-``repeats`` compress, then decompress of run 0's file, in fresh processes.

    With ``onnx`` (an ``autoenc export --onnx`` folder of the same model) the file is also
    decompressed with the onnxruntime backend, and its pixels compared with the torch decode.
    """
    mpix = _mpix(scene)
    out: dict[str, dict[str, Any]] = {}
    aec = [work / f"run{i}.aec" for i in range(repeats)]
    try:
        args = (str(ckpt), AUTO if tile is None else str(tile), AUTO, mode)
        runs = [_python(COMPRESS, str(scene), str(a), *args) for a in aec]
        out["compress"] = _best(runs, mpix)
    except ChildError as e:
        out["compress"] = {"error": str(e)}
        out["decompress"] = {"error": "not run (compress failed)"}
        return out
    out["compress"]["bytes_by_chunk"] = _chunk_bytes(aec[0])
    out["compress"]["largest_batch"] = _largest_batch(aec[0])
    for a in aec[1:]:
        a.unlink()
    tifs = [work / f"run{i}.tif" for i in range(repeats)]
    try:
        runs = [_python(DECOMPRESS, str(aec[0]), str(t), str(ckpt)) for t in tifs]
        out["decompress"] = _best(runs, mpix)
        out["decompress"]["output"] = str(tifs[0])
    except ChildError as e:
        out["decompress"] = {"error": str(e)}
    for t in tifs[1:]:
        t.unlink(missing_ok=True)
    if onnx is not None and "error" not in out["decompress"]:
        ort_tifs = [work / f"ort{i}.tif" for i in range(repeats)]
        try:
            runs = [
                _python(DECOMPRESS, str(aec[0]), str(t), str(onnx), "onnxruntime") for t in ort_tifs
            ]
            out["decompress_onnxruntime"] = _best(runs, mpix)
            out["decompress_onnxruntime"]["max_abs_diff_vs_torch"] = _max_diff(tifs[0], ort_tifs[0])
        except ChildError as e:
            out["decompress_onnxruntime"] = {"error": str(e)}
        for t in ort_tifs:
            t.unlink(missing_ok=True)
    return out


def _max_diff(a: Path, b: Path) -> float:
    """Largest |a - b| over pixels finite in both (NaN placement must agree: else inf)."""
    worst = 0.0
    with SceneReader(a) as ra, SceneReader(b) as rb:
        for y in range(0, ra.height, _STRIP):
            h = min(_STRIP, ra.height - y)
            x, z = ra.read(y, 0, h, ra.width), rb.read(y, 0, h, rb.width)
            if not np.array_equal(np.isnan(x), np.isnan(z)):
                return float("inf")
            ok = ~np.isnan(x)
            if ok.any():
                worst = max(worst, float(np.abs(x[ok].astype(np.float64) - z[ok]).max()))
    return worst


def _mpix(scene: Path) -> float:
    with SceneReader(scene) as r:
        return r.height * r.width / 1e6


def _chunk_bytes(aec: Path) -> dict[str, int]:
    """Payload bytes per chunk type; ``other`` = magic, header and chunk framing."""
    with ContainerReader(aec) as r:
        entries = r.validate()
    out: dict[str, int] = {}
    for e in entries:
        k = e.kind.decode("ascii")
        out[k] = out.get(k, 0) + e.length
    out["other"] = aec.stat().st_size - sum(out.values())
    return out


def _largest_batch(aec: Path) -> int:
    """Most same-shape input windows in one tile row (what ``g_a`` batches), <= its batch."""
    with ContainerReader(aec) as r:
        sc, tl = r.header["scene"], r.header["tiling"]
    grid = TileGrid(
        sc["height"], sc["width"], tl["tile"], tl["halo"], tl["latent_halo"], tl["factor"]
    )
    rows, cols = grid.shape
    most = 0
    for row in range(rows):
        wins = [grid.encode_window(row, c)[0] for c in range(cols)]
        shapes = Counter((w.h, w.w) for w in wins)
        most = max(most, *shapes.values())
    return min(most, encode_batch(tl["tile"]))


class DbWindow:
    """The model's dB window: linear intensity -> [0, 1] units, and validity."""

    def __init__(self, norm: Normalisation) -> None:
        self.norm = norm
        self.lo, self.hi = norm.window
        self.floor = float(norm.noise_floor_db)

    def units(self, inten: NDArray[Any]) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """(unit values, valid mask); invalid = NaN/Inf, <= 0 (zero border included)."""
        a = inten.astype(np.float64)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(a) & (a > 0)
        a = np.where(valid, a, 1.0)
        db = 10.0 * np.log10(np.maximum(a, 10.0 ** (self.floor / 10.0)))
        return self.norm.to_unit(db), valid


def window_psnr(
    orig: Path, win: DbWindow, recon: Callable[[int, int], NDArray[Any]]
) -> dict[str, float]:
    """PSNR (data range 1) in window units over ``orig``'s valid pixels.

    ``recon(y, h)`` gives the reconstruction's unit values of rows ``[y, y + h)``.
    """
    sse, n = 0.0, 0
    with SceneReader(orig) as a:
        for y in range(0, a.height, _STRIP):
            h = min(_STRIP, a.height - y)
            u, valid = win.units(a.read(y, 0, h, a.width))
            d = (recon(y, h).astype(np.float64) - u)[valid]
            sse += float(np.dot(d, d))
            n += int(d.size)
    mse = sse / n
    return {"psnr_db": 10.0 * np.log10(1.0 / mse), "mse": mse, "valid_px": n}


def scene_codes(scene: Path, win: DbWindow) -> tuple[NDArray[np.uint16], NDArray[np.bool_]]:
    """The whole scene as uint16 codes of the unit window; invalid pixels at the mid code."""
    with SceneReader(scene) as r:
        codes = np.empty((r.height, r.width), np.uint16)
        valid = np.empty((r.height, r.width), np.bool_)
        for y in range(0, r.height, _STRIP):
            h = min(_STRIP, r.height - y)
            u, v = win.units(r.read(y, 0, h, r.width))
            c = codes_from_unit(u)
            c[~v] = MID_CODE
            codes[y : y + h], valid[y : y + h] = c, v
    return codes, valid


def _j2k_encode(codes: NDArray[np.uint16], ratio: float) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(codes).save(
        buf, "JPEG2000", quality_mode="rates", quality_layers=[ratio], irreversible=True,
        no_jp2=True,
    )  # fmt: skip
    return buf.getvalue()


def _j2k_decode(data: bytes) -> NDArray[Any]:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def _timed(func: Any, *args: Any) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = func(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def measure_j2k(scene: Path, win: DbWindow, target_bpp: float, repeats: int) -> dict[str, Any]:
    """Pillow JPEG 2000 at ``target_bpp`` on ``scene``, in this process."""
    (codes, valid), prep_s, _ = _timed(scene_codes, scene, win)
    npix = codes.size
    mpix = npix / 1e6
    ratio = 16.0 / target_bpp
    tries = []
    for _ in range(J2K_MAX_ENCODES):
        data = _j2k_encode(codes, ratio)
        bpp = len(data) * 8 / npix
        tries.append({"ratio": ratio, "bpp": bpp})
        if abs(bpp / target_bpp - 1.0) <= J2K_RATE_TOL:
            break
        ratio *= bpp / target_bpp
    enc = [_timed(_j2k_encode, codes, ratio)[1:] for _ in range(repeats)]
    dec_runs = [_timed(_j2k_decode, data) for _ in range(repeats)]
    decoded = dec_runs[0][0]
    if decoded.dtype != np.uint16 or decoded.shape != codes.shape:
        raise RuntimeError(f"JPEG 2000 decoded {decoded.dtype} {decoded.shape}, not uint16 codes")
    q = window_psnr(scene, win, lambda y, h: unit_from_codes(decoded[y : y + h]))
    ew, ec = min(enc, key=lambda t: t[0])
    dw, dc = min(((w, c) for _, w, c in dec_runs), key=lambda t: t[0])
    return {
        "target_bpp": target_bpp,
        "bpp": len(data) * 8 / npix,
        "bytes": len(data),
        "ratio": ratio,
        "rate_tries": tries,
        **q,
        "prep_s": prep_s,
        "encode": {"wall_s": ew, "cpu_s": ec, "mpix_per_s": mpix / ew, "mpix_per_cpu_s": mpix / ec},
        "decode": {"wall_s": dw, "cpu_s": dc, "mpix_per_s": mpix / dw, "mpix_per_cpu_s": mpix / dc},
        "encode_runs_s": [w for w, _ in enc],
        "decode_runs_s": [w for _, w, _ in dec_runs],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Write the scenes, measure both codecs, return the record."""
    ckpt = Path(args.ckpt)
    from autoenc.codec.model_io import load_codec

    loaded = load_codec(ckpt)  # a checkpoint or a safetensors export
    pre = loaded.preprocessing
    win = DbWindow(pre.normalisation)
    integer = bool(getattr(getattr(loaded.model, "context", None), "integer", False))
    sizes = sorted(set(args.sizes))
    load_before = os.getloadavg()[0]
    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    quality: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_codec_", dir=args.tmp) as tmp:
        onnx = None
        if integer and not args.no_onnx:  # the onnxruntime backend needs integer contexts
            from autoenc.codec.onnx import export_onnx

            onnx = Path(tmp) / "onnx"
            export_onnx(loaded, onnx)
        for size in sizes:
            work = Path(tmp) / f"s{size}"
            scene = work / f"scene_{size}.tif"  # GRDH-like speckle (the generator's default)
            _, synth_s, _ = _timed(lambda p=scene, n=size: write_scene(p, n, 0, kind="intensity"))
            r = measure_autoenc(scene, work, ckpt, args.tile, args.repeats, args.mode, onnx)
            results.append({"size": size, "mpix": size * size / 1e6, "synth_s": synth_s, **r})
            if size == sizes[-1]:
                quality = measure_quality(scene, r, win, args.repeats)
            for p in work.glob("run*.tif"):
                p.unlink()
    baseline = _python(BASELINE, str(ckpt))["peak_rss_mb"]
    rss = {}
    for op in ("compress", "decompress"):
        ok = [r[op] for r in results if "error" not in r[op]]
        if len(ok) == len(results) and len(results) > 1:
            rss[op] = ok[-1]["peak_rss_mb_max"] / ok[0]["peak_rss_mb_max"]
    return {
        "benchmark": NAME,
        "machine": machine_info(),
        "ckpt": str(ckpt),
        "tile": args.tile if args.tile else "model default",
        "mode": args.mode,
        "repeats": args.repeats,
        "window_db": [win.lo, win.hi],
        "noise_floor_db": win.floor,
        "results": results,
        "quality": quality,
        "import_and_load_rss_mb": baseline,
        "rss_ratio_largest_vs_smallest": rss,
        "target_rss_ratio": TARGET_RSS_RATIO,
        "child_env": dict(CHILD_ENV),
        "total_s": time.perf_counter() - t_start,
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
    }


def measure_quality(
    scene: Path, r: dict[str, dict[str, Any]], win: DbWindow, repeats: int
) -> dict[str, Any]:
    """Real bpp and PSNR of autoenc on ``scene``, and JPEG 2000 at the same bpp."""
    comp, dec = r["compress"], r["decompress"]
    if "error" in comp:
        return {}
    npix = _mpix(scene) * 1e6
    chunks = comp["bytes_by_chunk"]
    out: dict[str, Any] = {
        "autoenc": {
            "bpp": comp["bpp"],
            "bpp_by_chunk": {k: v * 8 / npix for k, v in chunks.items()},
        }
    }
    if "error" not in dec:
        with SceneReader(dec["output"]) as rec:
            out["autoenc"].update(
                window_psnr(scene, win, lambda y, h: win.units(rec.read(y, 0, h, rec.width))[0])
            )
    out["jpeg2000"] = measure_j2k(scene, win, comp["bpp"], repeats)
    return out


def _fmt_row(label: str, op: str, size: int, m: dict[str, Any]) -> str:
    if "error" in m:
        return f"{label:<9} {op:<10} {size:>5}  FAILED: {m['error']}"
    imp = f"{m['import_s'] + m['load_s']:>8.2f}" if "import_s" in m else f"{'-':>8}"
    rss = f"{m['peak_rss_mb_max']:>8.0f}" if "peak_rss_mb_max" in m else f"{'-':>8}"
    return (
        f"{label:<9} {op:<10} {size:>5} {m['wall_s']:>7.2f} {m['cpu_s']:>7.2f} "
        f"{m['mpix_per_s']:>7.2f} {m['mpix_per_cpu_s']:>10.2f} {imp} {rss}"
    )


def report(rec: dict[str, Any]) -> None:
    """Print the tables, ratios and verdicts."""
    res, q = rec["results"], rec["quality"]
    threads = next((r["compress"]["threads"] for r in res if "threads" in r["compress"]), "?")
    env = " ".join(f"{k}={v}" for k, v in rec["child_env"].items()) or "default malloc"
    print(
        f"checkpoint {rec['ckpt']}; tile {rec['tile']}; mode {rec.get('mode', 'window')}; "
        f"torch threads {threads}; best of {rec['repeats']}; window {rec['window_db']} dB; {env}"
    )
    print(
        f"{'codec':<9} {'op':<10} {'size':>5} {'wall s':>7} {'CPU s':>7} {'MPix/s':>7} "
        f"{'MPix/CPU-s':>10} {'import s':>8} {'RSS MB':>8}"
    )
    for r in res:
        for op in ("compress", "decompress"):
            print(_fmt_row("autoenc", op, r["size"], r[op]))
        if "decompress_onnxruntime" in r:
            print(_fmt_row("autoenc", "dec (ORT)", r["size"], r["decompress_onnxruntime"]))
    j = q.get("jpeg2000")
    big = res[-1]["size"]
    if j:
        print(_fmt_row("JPEG2000", "encode", big, j["encode"]))
        print(_fmt_row("JPEG2000", "decode", big, j["decode"]))
        print(
            f"(JPEG 2000: Pillow in this process, codec only; GeoTIFF read + dB -> uint16 codes "
            f"took {j['prep_s']:.2f} s more. autoenc: import s = imports + load_codec, not timed)"
        )
    print(f"import + load_codec only: peak RSS {rec['import_and_load_rss_mb']:.0f} MB")
    dec0 = res[-1]["decompress"]
    if dec0.get("workers"):
        print(
            f"decompress: {dec0['workers']} decode worker processes (CPU s and RSS MB include "
            f"them; RSS as main + workers x largest worker, {dec0['peak_rss_mb']:.0f} + "
            f"{dec0['workers']} x {dec0['workers_peak_rss_mb']:.0f} MB at {res[-1]['size']}²)"
        )
    if q:
        a = q["autoenc"]
        print(f"\nquality on {big}² (PSNR on the window, valid pixels of the original):")
        print(f"{'codec':<9} {'bpp':>8} {'PSNR dB':>8}  notes")
        psnr = f"{a['psnr_db']:>8.2f}" if "psnr_db" in a else f"{'n/a':>8}"
        parts = ", ".join(f"{k} {v:.4f}" for k, v in a["bpp_by_chunk"].items())
        print(f"{'autoenc':<9} {a['bpp']:>8.4f} {psnr}  file bytes; bpp by chunk: {parts}")
        print(
            f"{'JPEG2000':<9} {j['bpp']:>8.4f} {j['psnr_db']:>8.2f}  codestream bytes; target "
            f"{j['target_bpp']:.4f} bpp, ratio {j['ratio']:.1f} ({len(j['rate_tries'])} encodes)"
        )
    print()
    comp, dec = res[-1]["compress"], res[-1]["decompress"]
    if j and "error" not in comp:
        print(
            f"speed autoenc/JPEG2000 at {big}²: compress "
            f"{comp['mpix_per_s'] / j['encode']['mpix_per_s']:.3g}x"
            + (
                f", decompress {dec['mpix_per_s'] / j['decode']['mpix_per_s']:.3g}x"
                if "error" not in dec
                else ", decompress n/a"
            )
            + " (wall MPix/s)"
        )
        ort = res[-1].get("decompress_onnxruntime")
        if ort and "error" not in ort:
            print(
                f"decompress with the onnxruntime backend: "
                f"{ort['mpix_per_s'] / j['decode']['mpix_per_s']:.3g}x JPEG 2000; largest "
                f"pixel difference from the torch decode {ort['max_abs_diff_vs_torch']:.3g} "
                "(linear units)"
            )
    if j and "psnr_db" in q["autoenc"]:
        print(
            f"PSNR autoenc - JPEG2000: {q['autoenc']['psnr_db'] - j['psnr_db']:+.2f} dB at "
            f"{q['autoenc']['bpp']:.4f} vs {j['bpp']:.4f} bpp"
        )
    batches = ", ".join(
        f"{r['size']}²: {r['compress']['largest_batch']}"
        for r in res
        if "largest_batch" in r["compress"]
    )
    print(f"compress: largest g_a batch of tile windows: {batches}")
    for op in ("compress", "decompress"):
        ratio = rec["rss_ratio_largest_vs_smallest"].get(op)
        if ratio is None:
            print(f"peak RSS {op} largest/smallest scene: n/a")
            continue
        ok = "PASS" if ratio <= TARGET_RSS_RATIO else "MISS"
        b0, b1 = (res[i]["compress"].get("largest_batch") for i in (0, -1))
        if op == "compress" and b0 != b1:
            ok = f"not comparable: g_a batches of {b0} vs {b1} tiles (see the docstring)"
        print(
            f"peak RSS {op} {res[-1]['size']}²/{res[0]['size']}²: {ratio:.2f}x  "
            f"target <= {TARGET_RSS_RATIO:.2f} (bounded memory)  {ok}"
        )
    la = rec["load_average_1m"]
    print(
        f"total {rec['total_s']:.0f} s; load average (1 min) before {la['before']:.2f}, after "
        f"{la['after']:.2f} on {os.cpu_count()} CPUs"
    )


def failed(rec: dict[str, Any]) -> bool:
    """Whether any measured run failed."""
    ops = ("compress", "decompress", "decompress_onnxruntime")
    return any("error" in r.get(op, {}) for r in rec["results"] for op in ops)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes", type=int, nargs="+", default=[3072, 4096], help="scene sides (default 3072 4096)"
    )
    p.add_argument(
        "--repeats", type=int, default=2, help="runs per measurement, best kept (default 2)"
    )
    p.add_argument(
        "--tile", type=int, default=None, help="autoenc tile core side (default: the model's)"
    )
    p.add_argument(
        "--mode",
        choices=("window", "keep"),
        default="window",
        help="window (default): autoenc codes the model's dB window only (--clip --offset-db "
        "0), like JPEG 2000 here, so speed and PSNR compare like for like; keep: the codec's "
        "defaults (exception layer, per-scene offset), whose extra bytes JPEG 2000 does not "
        "spend (benchmarks/bench_radiometry.py measures them)",
    )
    p.add_argument("--ckpt", default=DEFAULT_CKPT, help=f"trained checkpoint ({DEFAULT_CKPT})")
    p.add_argument(
        "--no-onnx",
        action="store_true",
        help="skip the onnxruntime decode (measured by default for integer-context models)",
    )
    p.add_argument("--tmp", default=None, help="folder for the scratch files (default: $TMPDIR)")
    p.add_argument(
        "--stable-rss",
        action="store_true",
        help="fix glibc's mmap threshold in the measured processes "
        "(MALLOC_MMAP_THRESHOLD_=131072) for reproducible peak RSS; the runs get slower "
        "(about 2x in one A/B pair), so compare no timings across this flag",
    )
    add_json_argument(p, NAME)
    args = p.parse_args(argv)
    CHILD_ENV.clear()
    CHILD_ENV.update(STABLE_RSS_ENV if args.stable_rss else {})
    if not Path(args.ckpt).is_file():
        sys.stderr.write(
            f"bench_codec: no checkpoint at {args.ckpt}; train one with\n  {MAKE_CKPT}\n"
            "or pass --ckpt PATH\n"
        )
        return 2
    rec = run(args)
    report(rec)
    save_record(args.json, NAME, rec)
    return 1 if failed(rec) else 0


if __name__ == "__main__":
    sys.exit(main())
