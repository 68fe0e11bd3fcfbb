# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The one way autoenc reads and writes Lightning checkpoints (torch only, no Lightning import).

Reading (:func:`read_checkpoint`) always passes ``weights_only=True`` explicitly and first makes
sure this torch really honours it (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` and similar switches must
not turn a crafted file into code that runs); every failure is a :class:`CheckpointError`
naming the file. Writing (:func:`save_atomic`) never leaves a partial file under the final
name: the checkpoint goes to a hidden temp file in the target's own folder (so never to
``TMPDIR``, which may be another filesystem), is flushed and fsynced, ``os.replace``d into
place, and the folder is fsynced. Temp files of dead writers are removed at the next save.
Non-finite weights are never written. The Trainer's plugin built on these,
:class:`autoenc.checkpoint_plugin.AtomicCheckpointIO`, lives apart so that the codec, which reads
checkpoints with :func:`read_checkpoint`, never imports Lightning.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from autoenc.atomic import fsync_dir, pid_alive

#: Infix of the writer's temp files: ``.<target name>.autoenc-tmp-<pid>`` next to the target.
TEMP_INFIX = ".autoenc-tmp-"
_TEMP_RE = re.compile(r"^\.(?P<target>.+)" + re.escape(TEMP_INFIX) + r"(?P<pid>\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, used or written (the message names the file)."""


class NonFiniteCheckpointError(CheckpointError):
    """Refusal to write a checkpoint whose weights hold NaN or Inf."""


# ---------------------------------------------------------------------------------------------
# Reading


_PROBE_RAN: list[bool] = []


def _probe_payload() -> None:
    _PROBE_RAN.append(True)


class _Probe:
    """A harmless pickle payload: loading it with ``weights_only=True`` must refuse it."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_probe_payload, ())


def weights_only_is_enforced() -> bool:
    """Whether ``torch.load(..., weights_only=True)`` refuses code here (tried on a probe).

    torch 2.13 lets an explicit ``weights_only=True`` win over ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
    (the switch only replaces an unset argument); this checks the torch actually installed,
    under the current environment, instead of trusting a version number.
    """
    buffer = io.BytesIO()
    torch.save(_Probe(), buffer)
    buffer.seek(0)
    _PROBE_RAN.clear()
    try:
        torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (the refusal we want; any other failure also runs no code)
        pass
    return not _PROBE_RAN


def require_weights_only(path: str | Path) -> None:
    """Raise unless :func:`weights_only_is_enforced` (before ``path`` is opened at all).

    Raises:
        CheckpointError: loading could run code from the file.
    """
    if not weights_only_is_enforced():
        raise CheckpointError(
            f"refusing checkpoint {path}: this torch does not enforce weights_only=True in the "
            "current environment (is TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD set?), so loading it "
            "could run code from the file; unset that variable"
        )


def _reason(exc: BaseException) -> str:
    """The informative part of a torch.load failure, on one short line."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # torch's long preamble, then the real reason
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    text = " ".join(text.split()).split(". ")[0]
    return (text[:157] + "...") if len(text) > 160 else text or type(exc).__name__


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint as weights only: tensors and plain containers, never code.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, a pickle that needs code
            to load, not a Lightning checkpoint, or this torch would not enforce weights only.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    require_weights_only(path)
    try:
        with path.open("rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Detected pickle protocol 4"
            ckpt = torch.load(f, map_location=map_location, weights_only=True)
    except Exception as e:  # weights-only refusal, truncation, random bytes, I/O: all the same
        # answer for the user; catching broadly keeps torch's internals out of the message.
        raise CheckpointError(
            f"refusing checkpoint {path}: it cannot be loaded as weights only ({_reason(e)})"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def check_training_checkpoint(ckpt: Mapping[str, Any], path: str | Path, *, resume: bool) -> None:
    """Refuse a checkpoint that ``autoenc fit/validate/test/predict`` cannot use.

    Args:
        ckpt: what :func:`read_checkpoint` returned.
        path: its file, for the message.
        resume: ``fit`` wants the training state too (optimizer, loops), not only weights.

    Raises:
        CheckpointError: not written by autoenc's task, or (``resume``) weights only.
    """
    hparams = ckpt.get("hyper_parameters")
    spec = hparams.get("model") if isinstance(hparams, Mapping) else None
    class_path = spec.get("class_path") if isinstance(spec, Mapping) else None
    if not (isinstance(class_path, str) and class_path.startswith("autoenc.models.")):
        raise CheckpointError(
            f"{path} is not an autoenc training checkpoint (its hyper_parameters name no "
            f"autoenc.models variant, got model={spec!r:.80})"
        )
    missing = [k for k in ("optimizer_states", "loops", "global_step") if k not in ckpt]
    if resume and missing:
        raise CheckpointError(
            f"{path} holds weights only (no {', '.join(missing)}), so training cannot resume "
            "from it; start a new run, or pass a last.ckpt written by `autoenc fit`"
        )


def check_state_fits(
    own: Mapping[str, torch.Tensor], saved: Mapping[str, Any], path: str | Path | None
) -> None:
    """Refuse saved weights whose names or shapes differ from the module's own.

    Raises:
        CheckpointError: naming the file and the first differences.
    """
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = sorted(
        f"{k} {tuple(saved[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(saved)
        if isinstance(saved[k], torch.Tensor) and saved[k].shape != own[k].shape
    )
    problems = [
        f"{label}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
        if names
    ]
    if problems:
        name = f"checkpoint {path}" if path is not None else "the checkpoint"
        raise CheckpointError(
            f"{name} does not fit this model ({'; '.join(problems)}); it was written for "
            "another model or configuration"
        )


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state`` holding NaN or Inf."""
    return [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(t.isfinite().all())
    ]


# ---------------------------------------------------------------------------------------------
# Writing


def temp_path(target: Path) -> Path:
    """This process's temp file for ``target`` (hidden, same folder, named by the pid)."""
    return target.with_name(f".{target.name}{TEMP_INFIX}{os.getpid()}")


def remove_dead_temps(folder: Path) -> list[Path]:
    """Remove temp files of writers that no longer run (or of this process: saves never overlap).

    Returns:
        The removed files.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMP_RE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or not pid_alive(pid):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def save_atomic(checkpoint: Mapping[str, Any], target: Path) -> None:
    """``torch.save`` to a temp file beside ``target``, fsync, ``os.replace``, fsync the folder.

    Invariant: ``target`` is at every moment either absent, its previous complete content or
    the new complete content; a kill leaves at most a hidden temp file (removed later).
    """
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(folder)
    tmp = temp_path(target)
    try:
        with tmp.open("wb") as f:
            torch.save(dict(checkpoint), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
