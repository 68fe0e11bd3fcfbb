# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Load a trained codec safely (a Lightning checkpoint or a safetensors export), fingerprint it.

Checkpoints are read with :func:`autoenc.checkpoint_io.read_checkpoint` (``weights_only=True``,
enforced even under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``): a file from elsewhere can hold only
tensors and plain containers, never code to run. A ``.safetensors`` export (what autoenc
ships, :func:`export_safetensors`) holds raw tensors plus JSON metadata and involves no pickle
at all. Either way the model is rebuilt from its ``{"class_path", "init_args"}`` spec,
restricted to autoenc's own variants, and its weights are hashed (:func:`weights_sha256`), the
identity every ``.aec`` header records.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autoenc.checkpoint_io import CheckpointError, read_checkpoint
from autoenc.models import AutoencoderBase, build_model
from autoenc.sar.preprocessing import Preprocessing


class ModelError(ValueError):
    """A checkpoint that cannot serve as a codec (the message says why and names the file)."""


@dataclass
class LoadedCodec:
    """A model ready for coding, with what the codec needs to know about it."""

    model: AutoencoderBase
    spec: dict[str, Any]
    preprocessing: Preprocessing
    weights_sha256: str
    path: Path
    halos: tuple[int, int] | None = None  # receptive-field probe, cached across scenes


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (tables too)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_codec(path: str | Path, device: str | torch.device = "cpu") -> LoadedCodec:
    """Rebuild the model of a training checkpoint, in eval mode on ``device``.

    Raises:
        ModelError: unreadable or unsafe file, not an autoenc checkpoint, missing coding tables
            or missing preprocessing parameters.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        spec, state, pre = _read_safetensors(path)
    else:
        spec, state, pre = _read_checkpoint(path)
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ModelError(f"{path} does not record its model (hyper_parameters.model)")
    if not str(spec["class_path"]).startswith("autoenc.models."):
        raise ModelError(f"{path}: model class {spec['class_path']!r} is not an autoenc variant")
    try:
        model = build_model(spec)
    except (TypeError, ValueError) as e:
        raise ModelError(f"{path}: cannot rebuild model {spec['class_path']}: {e}") from None
    own = dict(model.named_buffers())
    for name, saved in state.items():
        if name in own and own[name].shape != saved.shape:
            own[name].resize_(saved.shape)  # coding tables are sized by update()
    entropy = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    entropy = {n for n in entropy if n.startswith(("entropy_bottleneck.", "gaussian_conditional."))}
    if entropy and not entropy & set(state):
        raise ModelError(
            f"{path} predates autoenc's entropy models (no entropy_bottleneck weights), so it "
            "cannot write real files; train it again with the current version"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise ModelError(
            f"{path}: weights do not fit {spec['class_path']}: {' '.join(lines[:2])}"
        ) from None
    if not all(m.has_tables for m in model.entropy_models()):
        raise ModelError(
            f"{path} carries no entropy coding tables; it predates autoenc's codec. Re-save it "
            "with the current version (e.g. a short `autoenc fit --ckpt_path` resume)"
        )
    if not isinstance(pre, dict) or "normalisation" not in pre:
        raise ModelError(
            f"{path} lacks the preprocessing parameters (dB window, noise floor) it was trained "
            "with; only checkpoints written by `autoenc fit` on a prepared dataset carry them"
        )
    try:
        preprocessing = Preprocessing.from_dict(pre)
    except ValueError as e:
        raise ModelError(f"{path}: bad preprocessing parameters: {e}") from None
    model.eval().to(device)
    return LoadedCodec(model, dict(spec), preprocessing, weights_sha256(state), path)


#: ``format`` metadata of autoenc's safetensors exports.
EXPORT_FORMAT = "autoenc-codec/1"


def _read_checkpoint(path: Path) -> tuple[Any, dict[str, torch.Tensor], Any]:
    """(model spec, model state, preprocessing) of a Lightning checkpoint, weights only.

    Read by :func:`autoenc.checkpoint_io.read_checkpoint`, the loader the trainer uses too.
    """
    try:
        ckpt = read_checkpoint(path)
    except CheckpointError as e:  # unsafe, truncated, unreadable or no state_dict
        raise ModelError(str(e)) from None
    spec = (ckpt.get("hyper_parameters") or {}).get("model")
    state = {k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return spec, state, ckpt.get("autoenc_preprocessing")


def _read_safetensors(path: Path) -> tuple[Any, dict[str, torch.Tensor], Any]:
    """(model spec, model state, preprocessing) of an :func:`export_safetensors` file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise ModelError(f"{path} is not an autoenc codec export (format {meta.get('format')!r})")
    try:
        spec = json.loads(meta["model"])
        pre = json.loads(meta["preprocessing"])
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: bad autoenc metadata ({e})") from None
    return spec, state, pre


def export_safetensors(codec: LoadedCodec, dst: str | Path) -> Path:
    """Write ``codec`` (weights and coding tables, spec, preprocessing) as safetensors.

    Written next to ``dst`` and renamed into place. Loading it back with :func:`load_codec`
    gives the same :func:`weights_sha256`.
    """
    from safetensors.torch import save_file

    dst = Path(dst)
    state = {k: v.detach().cpu().contiguous() for k, v in codec.model.state_dict().items()}
    meta = {
        "format": EXPORT_FORMAT,
        "model": json.dumps(codec.spec, sort_keys=True),
        "preprocessing": json.dumps(codec.preprocessing.to_dict(), sort_keys=True),
        "weights_sha256": weights_sha256(state),
    }
    tmp = dst.with_name(f".{dst.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, dst)
    return dst
