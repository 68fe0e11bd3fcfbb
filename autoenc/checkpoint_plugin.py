# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Lightning's checkpoint plugin for autoenc: :mod:`autoenc.checkpoint_io` under the Trainer.

Kept out of :mod:`autoenc.checkpoint_io` (torch only) because it subclasses Lightning's
:class:`~lightning.pytorch.plugins.io.TorchCheckpointIO`; the codec reads checkpoints without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from autoenc.checkpoint_io import (
    NonFiniteCheckpointError,
    check_training_checkpoint,
    nonfinite_tensors,
    read_checkpoint,
    require_weights_only,
    save_atomic,
)


def _is_local(path: str | Path) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint plugin: :func:`save_atomic` writes, :func:`read_checkpoint` reads.

    Installed by ``autoenc fit|validate|test|predict`` for every run, so the Trainer's resume
    (``--ckpt_path``) goes through the same weights-only loader as the codec. Remote paths
    (``s3://`` ...) are written by :class:`TorchCheckpointIO` and read with an explicit
    ``weights_only=True``.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` atomically; refuse non-finite weights.

        Raises:
            NonFiniteCheckpointError: some weight tensor holds NaN/Inf (nothing is written).
        """
        bad = nonfinite_tensors(checkpoint.get("state_dict") or {})
        if bad:
            raise NonFiniteCheckpointError(
                f"refusing to save checkpoint {path}: {len(bad)} weight tensors hold NaN/Inf "
                f"({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); the training diverged. "
                "Lower the learning rate, use bf16-mixed instead of 16-mixed, or check the data"
            )
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        save_atomic(checkpoint, Path(str(path).removeprefix("file://")))

    @override
    def load_checkpoint(
        self,
        path: Any,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read through :func:`read_checkpoint` (``weights_only`` is always True, whatever given).

        Raises:
            CheckpointError: see :func:`read_checkpoint` and :func:`check_training_checkpoint`.
        """
        if not _is_local(path):
            require_weights_only(path)
            return super().load_checkpoint(path, map_location, weights_only=True)
        ckpt = read_checkpoint(str(path).removeprefix("file://"), map_location)
        check_training_checkpoint(ckpt, path, resume=False)
        return ckpt
