# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""The codec shipped inside the package: safetensors weights plus a model card.

``autoenc compress`` uses :data:`DEFAULT` when no ``--ckpt`` is given; ``autoenc decompress``
finds a shipped model by the weights hash a file's header records (:func:`find_shipped`). The
files are produced by ``make codec-model`` (train, then ``autoenc export``); nothing here is
pickled, so loading needs no trust in the file.

Earlier defaults stay here so that the files they wrote keep decoding (:func:`find_shipped`
searches every ``*.safetensors``): ``wavelet-grdh`` (float context nets, issue 11) was the
default until ``wavelet-grdh-int`` (integer context nets, narrower at the finest levels: portable
files, exact ONNX decoding and faster coding; issue 14), which was the default until
``wavelet-grdh-fast``: the same nets with its two finest levels coded in one stage (``make
codec-fast``; faster decoding for about 1-2 % of rate, issue 14), which was the default until
``wavelet-grdh-parent``: as wavelet-grdh-fast, with the two finest levels' scales predicted at
their parents' resolution by new nets fitted on the training split, every other weight kept
(``make codec-parent``; faster decoding and fewer bits at those levels, issue 14).
"""

from __future__ import annotations

from pathlib import Path

import torch

from autoenc.codec.model_io import LoadedCodec, ModelError, load_codec

#: Name of the default codec: ``<name>.safetensors`` and its card ``<name>.md`` live here.
DEFAULT = "wavelet-grdh-parent"
FOLDER = Path(__file__).resolve().parent


def shipped() -> list[Path]:
    """The shipped weight files, sorted by name."""
    return sorted(FOLDER.glob("*.safetensors"))


def default_path() -> Path:
    """Path of the default codec's weights."""
    return FOLDER / f"{DEFAULT}.safetensors"


def load_default(device: str | torch.device = "cpu") -> LoadedCodec:
    """The default codec, ready to code.

    Raises:
        ModelError: the package was installed without its weights (or they are damaged).
    """
    path = default_path()
    if not path.is_file():
        raise ModelError(
            f"the shipped default codec {path} is missing (a build without package data?); "
            "pass --ckpt, or train one with `make codec-model`"
        )
    return load_codec(path, device)


def resolve(ckpt: Path) -> Path:
    """``ckpt`` itself, or the shipped model it names (``wavelet-grdh-int``: no such file here).

    A bare name without suffix that is not a file resolves to ``FOLDER/<name>.safetensors``
    when the package ships it; anything else is returned unchanged (and loading reports it).
    """
    if ckpt.is_file() or ckpt.suffix or len(ckpt.parts) != 1:
        return ckpt
    shipped_file = FOLDER / f"{ckpt.name}.safetensors"
    return shipped_file if shipped_file.is_file() else ckpt


def find_shipped(weights_sha256: str) -> Path | None:
    """The shipped weight file whose weights hash is ``weights_sha256``, if any."""
    from safetensors import SafetensorError, safe_open

    for path in shipped():
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                if (f.metadata() or {}).get("weights_sha256") == weights_sha256:
                    return path
        except (SafetensorError, OSError):
            continue  # a damaged file is no match; loading it by name reports the damage
    return None
