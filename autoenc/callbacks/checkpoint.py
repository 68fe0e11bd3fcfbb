# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The run's ModelCheckpoint: its folder holds exactly what its state knows, also after a kill."""

from __future__ import annotations

import re
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from autoenc.checkpoint_io import remove_dead_temps


class RunCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` that tidies its folder when training starts.

    A run killed between writing a new best checkpoint and ``last.ckpt`` leaves a best file the
    resumed state does not know; without cleaning, the resumed run keeps it beside the new best
    (more than ``save_top_k`` files, or a ``-v1`` twin). At train start (rank 0) this removes:

    * temp files of dead checkpoint writers (:func:`autoenc.checkpoint_io.remove_dead_temps`);
    * on a resume whose restored state belongs to this folder, the files matching ``filename``
      that the state does not know (not a top-k, best, last or the resumed file).
    """

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not trainer.is_global_zero or not self.dirpath or "://" in str(self.dirpath):
            return
        folder = Path(self.dirpath)
        for path in remove_dead_temps(folder):
            rank_zero_info(f"autoenc: removed {path}, a temp file of a killed checkpoint write")
        if trainer.ckpt_path is not None:
            for path in self.unknown_files(folder, Path(trainer.ckpt_path)):
                path.unlink(missing_ok=True)
                rank_zero_info(f"autoenc: removed {path}, a checkpoint the resumed run never kept")

    def unknown_files(self, folder: Path, resumed: Path) -> list[Path]:
        """Checkpoints in ``folder`` named like this callback's that its state does not know."""
        paths: list[str | Path] = [
            *self.best_k_models,
            self.best_model_path,
            self.kth_best_model_path,
            self.last_model_path,
            resumed,
        ]
        known = {Path(p).resolve() for p in paths if p}
        state_folder = Path(self.last_model_path).resolve().parent if self.last_model_path else None
        if state_folder != folder.resolve():
            return []  # the restored state describes another folder (or none): touch nothing
        template = self.filename or "{epoch}" + self.CHECKPOINT_JOIN_CHAR + "{step}"
        pattern = re.sub(r"\{[^}]*\}", "*", template) + self.FILE_EXTENSION
        last = re.compile(rf"^{re.escape(self.CHECKPOINT_NAME_LAST or 'last')}(-v?\d+)?$")
        return sorted(
            p
            for p in folder.glob(pattern)
            if p.is_file()
            and not p.name.startswith(".")
            and not last.match(p.stem)
            and p.resolve() not in known
        )
