# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The ``autoenc`` command: LightningCLI subcommands plus autoenc's own tools.

``fit | validate | test | predict`` go to LightningCLI (:mod:`autoenc.trainer_cli`, imported
only for them); every other command (``prepare``, ``synth``, later ``compress``, ...) is an
entry of :data:`COMMANDS` with its own argparse CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

TRAINER_COMMANDS = ("fit", "validate", "test", "predict")


def _synth(argv: list[str]) -> int:
    from autoenc.data.synth_dataset import synth_main

    return synth_main(argv)


def _prepare(argv: list[str]) -> int:
    from autoenc.data.prepare_cli import prepare_main

    return prepare_main(argv)


def _compress(argv: list[str]) -> int:
    from autoenc.codec.cli import compress_main

    return compress_main(argv)


def _decompress(argv: list[str]) -> int:
    from autoenc.codec.cli import decompress_main

    return decompress_main(argv)


def _evaluate(argv: list[str]) -> int:
    from autoenc.evaluation.cli import evaluate_main

    return evaluate_main(argv)


def _report(argv: list[str]) -> int:
    from autoenc.evaluation.cli import report_main

    return report_main(argv)


def _compare(argv: list[str]) -> int:
    from autoenc.evaluation.compare import compare_main

    return compare_main(argv)


def _export(argv: list[str]) -> int:
    from autoenc.pretrained.card import export_main

    return export_main(argv)


def _variants(argv: list[str]) -> int:
    from autoenc.models.table import variants_main

    return variants_main(argv)


# name -> (entry point taking argv, one-line help). Later issues add prepare, compress, ...
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "prepare": (_prepare, "turn Sentinel-1 GeoTIFF scenes into a scene-split patch dataset"),
    "synth": (_synth, "generate the synthetic Sentinel-1-like scenes or patch dataset"),
    "compress": (_compress, "compress GeoTIFF scenes into .aec files with a trained model"),
    "decompress": (_decompress, "decompress .aec files back into GeoTIFFs"),
    "evaluate": (_evaluate, "score models and classical codecs on a split (per-patch records)"),
    "report": (_report, "write the Markdown R-D report (plots, BD-rate, gallery) from results"),
    "compare": (_compare, "train, evaluate and report a comparison plan (configs/compare/*.yaml)"),
    "export": (_export, "export a trained codec as safetensors + a measured model card"),
    "variants": (_variants, "print the table of registered model variants"),
}

HELP = """usage: autoenc COMMAND [options]

Learned compression for Sentinel-1 SAR images.

Training (LightningCLI; `autoenc COMMAND --help` for all options):
  fit         train a model:   autoenc fit --config configs/residual.yaml
  validate    score a checkpoint on the validation split
  test        score a checkpoint on the test split
  predict     write reconstructions and latents of a split

Resume a run: autoenc fit --ckpt_path lightning_logs/<run>/checkpoints/last.ckpt
(the run's config.yaml is found next to the checkpoint folder).

Tools:
{tools}
"""


def run_trainer(argv: Sequence[str], *, use_sys_argv: bool = False) -> Any:
    """Run a LightningCLI subcommand in-process (see :func:`autoenc.trainer_cli.run_trainer`)."""
    from autoenc.trainer_cli import run_trainer as _run_trainer

    return _run_trainer(argv, use_sys_argv=use_sys_argv)


def _destroy_process_group() -> None:
    """Tear down a DDP process group before the interpreter exits.

    Lightning leaves it alive; gloo's worker threads then die during interpreter finalisation
    and the process aborts ("terminate called without an active exception", exit -6).
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main(args: Sequence[str] | None = None) -> int:
    """Entry point of the ``autoenc`` console script."""
    argv = list(sys.argv[1:] if args is None else args)
    # Lightning 2.6 calls jsonargparse APIs deprecated in 4.49; nothing a user can act on.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    if not argv or argv[0] in ("-h", "--help"):
        tools = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
        sys.stdout.write(HELP.format(tools=tools))
        return 0 if argv else 2
    if argv[0] in COMMANDS:
        return COMMANDS[argv[0]][0](argv[1:])
    if argv[0] not in TRAINER_COMMANDS:
        valid = ", ".join([*TRAINER_COMMANDS, *COMMANDS])
        sys.stderr.write(f"autoenc: unknown command {argv[0]!r}; valid commands: {valid}\n")
        return 2
    from jsonargparse import ArgumentError

    from autoenc.callbacks.guard import NonFiniteError
    from autoenc.models import list_models
    from autoenc.task import NonFiniteLossError

    try:
        run_trainer(argv, use_sys_argv=args is None)
    except ArgumentError as exc:
        message = str(exc)
        if "class_path" in message and "model" in message:
            variants = ", ".join(f"autoenc.models.{name}" for name in list_models())
            message += f"\nvalid model variants (model.model.class_path): {variants}"
        sys.stderr.write(f"autoenc: error: {message}\n")
        return 2
    # ValueError includes autoenc.checkpoint_io.CheckpointError: a missing, corrupt or foreign
    # --ckpt_path, nothing to resume, or a refusal to save non-finite weights.
    except (
        FileNotFoundError,
        FileExistsError,
        ValueError,
        NonFiniteLossError,
        NonFiniteError,
    ) as exc:
        if os.environ.get("AUTOENC_DEBUG"):
            raise
        sys.stderr.write(f"autoenc: error: {exc}\n")
        return 1
    finally:
        _destroy_process_group()
    return 0
