# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""``autoenc compress`` and ``autoenc decompress``: argument parsing, progress, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

#: Exit codes (documented in the README).
EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_MODEL, EXIT_CORRUPT, EXIT_OOM, EXIT_DEVICE = range(7)

EXIT_HELP = """\
exit codes: 0 ok; 1 internal error; 2 bad input or options (also: an output that exists
without --overwrite, or that is one of the inputs); 3 model problem (checkpoint missing,
unsafe, without preprocessing parameters, or not the encoder's model); 4 corrupt or
truncated .aec file; 5 out of memory; 6 file encoded on another kind of device (re-encode
with --device cpu for portable files).
"""
#: Share of a file spent on exceptions above which ``compress`` warns (the scene does not fit).
EXCEPTION_WARN_SHARE = 0.5
#: Share of valid pixels clipped (``--clip``) above which ``compress`` warns, naming it.
CLIP_WARN_FRACTION = 0.01
OVERWRITE_HELP = "replace existing outputs (atomically, once the new file is complete)"


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    return name


def _run(func: Callable[[], None], quiet: bool) -> int:
    """Run a command body and map every failure to its exit code and a one-line message."""
    from autoenc.codec.container import CorruptStreamError
    from autoenc.codec.model_io import ModelError
    from autoenc.models import DeviceMismatchError
    from autoenc.sar.geotiff import SceneError

    try:
        func()
    except CorruptStreamError as e:
        return _fail(f"corrupt file: {e}", EXIT_CORRUPT)
    except DeviceMismatchError as e:
        return _fail(f"{e}; encode with --device cpu for files any machine can decode", EXIT_DEVICE)
    except ModelError as e:
        return _fail(str(e), EXIT_MODEL)
    except MemoryError:
        return _fail("out of memory: use a smaller --tile or --batch-size", EXIT_OOM)
    except (SceneError, ValueError, OSError) as e:  # OSError: missing, unwritable, disk full
        return _fail(str(e), EXIT_BAD_INPUT)
    except RuntimeError as e:
        if "out of memory" in str(e).lower():
            return _fail(f"out of memory ({e}); use a smaller --tile or --batch-size", EXIT_OOM)
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        return _fail(f"internal error: {e}", EXIT_INTERNAL)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    if os.environ.get("AUTOENC_DEBUG"):
        traceback.print_exc()
    sys.stderr.write(f"autoenc: error: {message}\n")
    return code


@contextlib.contextmanager
def _progress(label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A transient bar counting rows of tiles (no known total: it pulses); yields its advance."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"{label} (rows of tiles)", total=None)
        yield lambda n: bar.advance(task, n)


def _outputs(
    inputs: list[Path], out: Path, suffix: str, overwrite: bool, others: list[Path]
) -> list[Path]:
    """One output per input; refused before any work when one would destroy a file.

    Raises:
        ValueError: an output that is (a path, symlink or hard link to) an input or to one
            of ``others`` (e.g. ``--ckpt``), two inputs with the same output, or (as
            OutputExistsError) an existing output without ``--overwrite``.
    """
    from autoenc.atomic import check_output, same_file

    if len(inputs) == 1 and not out.is_dir():
        outs = [out]
    elif not out.is_dir():
        raise ValueError(f"-o {out}: with several inputs it must be an existing folder")
    else:
        outs = [out / (p.stem + suffix) for p in inputs]
    for i, dst in enumerate(outs):
        for src in [*inputs, *others]:
            if same_file(src, dst):
                raise ValueError(f"output {dst} is the input {src}; choose another output")
        if any(same_file(dst, prev) for prev in outs[:i]):
            raise ValueError(f"inputs {inputs[i]} and another one would both write {dst}")
        check_output(dst, overwrite)
    return outs


def compress_main(argv: list[str] | None = None) -> int:
    """Entry point of ``autoenc compress``."""
    p = argparse.ArgumentParser(
        prog="autoenc compress", description="Compress GeoTIFF scenes into .aec files.",
        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", type=Path, help="GeoTIFF scene(s)")
    p.add_argument("-o", "--output", type=Path, required=True, help=".aec file, or a folder")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="model: a checkpoint of `autoenc fit`, a .safetensors export or a "
                   "shipped model's name, e.g. wavelet-grdh-int (default: the shipped "
                   "default codec)")  # fmt: skip
    p.add_argument("--quality", type=int, default=None,
                   help="operating point of a variable-rate model, 0 = smallest files "
                   "(default: the model's; its card lists the ladder)")  # fmt: skip
    p.add_argument("--tile", type=int, default=None,
                   help="tile core side in px (default: the model's; 1024 for the wavelet "
                   "codec, else 512)")  # fmt: skip
    p.add_argument("--halo", type=int, default=None, help="input halo px (default: probed)")
    p.add_argument("--latent-halo", type=int, default=None, help="decoder halo in latent px")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="tiles per network call (default: 1 Mpx of tiles, e.g. 4 of 512²)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--band", default=None, help="band index or description (multi-band files)")
    p.add_argument("--input-kind", default="auto", choices=("auto", "amplitude", "intensity", "db"))
    p.add_argument(
        "--calibration",
        default="auto",
        help="as for autoenc prepare (applied to amplitude DN inputs only)",
    )
    p.add_argument("--offset-db", default="auto", metavar="auto|median|DB",
                   help="per-scene gain added to the scene's dB before the model's window and "
                   "undone on decode: 'auto' (default) the offset putting the most valid "
                   "pixels inside the window (0 when 0 does within 0.1%%; e.g. -50 for "
                   "uncalibrated DN^2); 'median' the scene's median to the window's centre; "
                   "or a number of dB")  # fmt: skip
    p.add_argument(
        "--clip",
        action="store_true",
        help="clip valid pixels outside the model's dB window (today's smallest "
        "files) instead of keeping them as exceptions beside the learned stream",
    )
    p.add_argument(
        "--exception-step",
        type=float,
        default=0.05,
        metavar="DB",
        help="quantisation step of the exceptions in dB (default 0.05: every pixel "
        "outside the window decodes within step/2 dB of its input; 0.001..1)",
    )
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = p.parse_args(argv)

    def body() -> None:
        from autoenc.codec.header import check_step
        from autoenc.codec.model_io import load_codec
        from autoenc.codec.scene import compress_scene
        from autoenc.sar.offset import parse_offset

        check_step(args.exception_step, "compress")  # before loading the model
        offset = parse_offset(args.offset_db)

        ckpts = [args.ckpt] if args.ckpt is not None else []
        outs = _outputs(args.inputs, args.output, ".aec", args.overwrite, ckpts)
        from autoenc.pretrained import load_default, resolve

        device = _device(args.device)
        ckpt = None if args.ckpt is None else resolve(args.ckpt)
        codec = load_default(device) if ckpt is None else load_codec(ckpt, device)
        for src, dst in zip(args.inputs, outs, strict=True):
            with _progress(f"compress {src.name}", args.quiet) as advance:
                stats = compress_scene(
                    src, dst, codec, tile=args.tile, halo=args.halo, latent_halo=args.latent_halo,
                    batch_size=args.batch_size, band=args.band, input_kind=args.input_kind,
                    calibration=args.calibration, advance=advance, quality=args.quality,
                    overwrite=args.overwrite, exceptions="clip" if args.clip else "keep",
                    exception_step=args.exception_step, offset_db=offset,
                )  # fmt: skip
            share = stats.exception_bytes / max(stats.file_bytes, 1)
            if share > EXCEPTION_WARN_SHARE:  # also with --quiet: the file is not what was meant
                sys.stderr.write(
                    f"autoenc: warning: {src}: {stats.exceptions:,} px lie outside the model's dB "
                    f"window and the exception layer holding them is {share:.0%} of the file "
                    f"({stats.exception_bpp:.3f} bpp); the scene's radiometry does not fit this "
                    "model (check --input-kind / --calibration / --offset-db), or pass --clip "
                    "to drop them\n"
                )
            valid = stats.height * stats.width - stats.invalid
            clipped = (stats.clipped_low + stats.clipped_high) / max(valid, 1)
            if clipped > CLIP_WARN_FRACTION:  # values lost: also with --quiet
                sys.stderr.write(
                    f"autoenc: warning: {src}: {clipped:.1%} of the valid pixels were clipped to "
                    f"the model's dB window ({stats.clipped_low:,} low, {stats.clipped_high:,} "
                    f"high; offset {stats.offset_db:+.2f} dB); drop --clip to keep them, or "
                    "check --offset-db / --calibration\n"
                )
            if not args.quiet:
                if stats.calibration_note:
                    sys.stderr.write(f"{src}: {stats.calibration_note}\n")
                if stats.offset_db:
                    sys.stderr.write(f"{src}: offset {stats.offset_db:+.2f} dB "
                                     f"({stats.offset_reason})\n")  # fmt: skip
                if args.clip:
                    outside = f"clipped {stats.clipped_low:,} low / {stats.clipped_high:,} high"
                else:
                    outside = (
                        f"{stats.exceptions:,} px outside the window kept as exceptions, "
                        f"{stats.exception_bytes:,} bytes, {stats.exception_bpp:.4f} bpp"
                    )
                sys.stderr.write(
                    f"{src} -> {dst}: {stats.file_bytes:,} bytes, {stats.bpp:.4f} bpp, "
                    f"{stats.mpix_per_s:.2f} MPix/s; {outside}; {stats.invalid:,} invalid px "
                    "kept exactly\n"
                )

    return _run(body, args.quiet)


def decompress_main(argv: list[str] | None = None) -> int:
    """Entry point of ``autoenc decompress``."""
    p = argparse.ArgumentParser(
        prog="autoenc decompress", description="Decompress .aec files into GeoTIFFs.",
        epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", type=Path, help=".aec file(s)")
    p.add_argument("-o", "--output", type=Path, required=True, help="GeoTIFF, or a folder")
    p.add_argument("--ckpt", type=Path, default=None,
                   help="model (default: the file named in the header, next to the .aec, "
                   "else the shipped model with the header's weights hash)")  # fmt: skip
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                   help="default cpu: decodes files from any device the same way")  # fmt: skip
    p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                   help="onnxruntime: decode with the graphs of `autoenc export --onnx DIR`, "
                   "given as --ckpt DIR (pip install 'autoenc[onnx]')")  # fmt: skip
    p.add_argument("--despeckle", type=float, default=0.0, metavar="S",
                   help="reconstruct towards the clean reflectivity, strength 0..1 (default 0: "
                   "faithful to the input, speckle kept; wavelet codecs only)")  # fmt: skip
    p.add_argument(
        "--speckle-product",
        default="grdh",
        help="speckle model that --despeckle removes (grdh, slc-intensity, white)",
    )
    p.add_argument("--workers", type=int, default=None,
                   help="processes that entropy-decode tiles in parallel on the CPU (default: "
                   "one per core; 0: none)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--quiet", action="store_true", help="no summary")
    args = p.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        p.error(f"--workers must be >= 0, got {args.workers}")
    if args.backend == "onnxruntime" and (args.ckpt is None or args.device != "cpu"):
        p.error("--backend onnxruntime needs --ckpt DIR (an `autoenc export --onnx` folder) "
                "and runs on the CPU")  # fmt: skip

    def body() -> None:
        from autoenc.atomic import same_file
        from autoenc.codec.despeckle import Despeckle
        from autoenc.codec.header import SceneHeader
        from autoenc.codec.model_io import LoadedCodec, ModelError, load_codec
        from autoenc.codec.scene import decompress_scene
        from autoenc.data.speckle import product

        if args.speckle_product is not None:
            product(args.speckle_product)  # an unknown name fails here, listing the known ones
        despeckle = Despeckle(args.despeckle, args.speckle_product)

        for src in args.inputs:
            if not src.is_file():
                raise FileNotFoundError(f"no such file: {src}")
        ckpts = [args.ckpt] if args.ckpt is not None else []
        outs = _outputs(args.inputs, args.output, ".tif", args.overwrite, ckpts)
        cache: dict[Path, LoadedCodec] = {}
        for src, dst in zip(args.inputs, outs, strict=True):

            def load(sh: SceneHeader, src: Path = src, dst: Path = dst) -> LoadedCodec:
                from autoenc.pretrained import find_shipped, resolve

                if args.backend == "onnxruntime":  # --ckpt is the export folder
                    from autoenc.codec.onnx import load_onnx

                    if args.ckpt not in cache:
                        cache[args.ckpt] = load_onnx(args.ckpt)
                    return cache[args.ckpt]
                name = Path(sh.model.checkpoint or "").name  # no path parts
                path = resolve(args.ckpt) if args.ckpt is not None else src.parent / name
                if args.ckpt is None and not path.is_file():
                    shipped = find_shipped(sh.model.weights_sha256)
                    path = shipped if shipped is not None else path
                if not path.is_file():
                    raise ModelError(
                        f"checkpoint {path} not found and no shipped model has the weights "
                        "hash of the file's header; pass --ckpt"
                    )
                if same_file(path, dst):
                    raise ValueError(f"output {dst} is the checkpoint {path}; choose another")
                if path not in cache:
                    cache[path] = load_codec(path, _device(args.device))
                return cache[path]

            with _progress(f"decompress {src.name}", args.quiet) as advance:
                stats = decompress_scene(src, dst, load, advance=advance, despeckle=despeckle,
                                         overwrite=args.overwrite,
                                         workers=args.workers)  # fmt: skip
            if not args.quiet:
                sys.stderr.write(
                    f"{src} -> {dst}: {stats.height}x{stats.width}, {stats.bpp:.4f} bpp, "
                    f"{stats.mpix_per_s:.2f} MPix/s\n"
                )

    return _run(body, args.quiet)
