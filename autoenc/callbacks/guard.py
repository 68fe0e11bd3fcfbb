# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Stop a run whose weights or validation metrics went NaN/Inf before anything saves them."""

from __future__ import annotations

import math
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from typing_extensions import override

from autoenc.checkpoint_io import nonfinite_tensors


class NonFiniteError(RuntimeError):
    """The run diverged: NaN/Inf weights or metrics, or no training step was finite."""


def _bad_metrics(metrics: dict[str, Any], prefix: str) -> list[str]:
    bad = []
    for name, value in metrics.items():
        if not name.startswith(prefix):
            continue
        v = float(value)
        if math.isnan(v) or (math.isinf(v) and not (name.endswith("psnr") and v > 0)):
            bad.append(f"{name}={v}")
    return sorted(bad)


class NonFiniteGuard(Callback):
    """Raise :class:`NonFiniteError` before a checkpoint of a diverged model can be written.

    Checked at the end of every validation but the sanity check (also inside the task's window
    of tolerated non-finite training steps), every training epoch and training: weights must be
    finite, validation metrics too (except a perfect ``+inf`` PSNR), and during ``fit`` at least one
    training step must have had a finite loss. Lightning runs checkpoint callbacks after all
    others, so this always runs before ``ModelCheckpoint`` saves ``best``/``last``.
    """

    @staticmethod
    def check(trainer: Trainer, pl_module: LightningModule, where: str) -> None:
        """Raise :class:`NonFiniteError` naming what is non-finite at ``where``."""
        weights = nonfinite_tensors(dict(pl_module.state_dict()))
        if weights:
            more = " ..." if len(weights) > 3 else ""
            raise NonFiniteError(
                f"{len(weights)} weight tensors are NaN/Inf at {where} (global step "
                f"{trainer.global_step}: {', '.join(weights[:3])}{more}); the training diverged "
                "and nothing was saved. Lower the learning rate (--model.lr) or check the data"
            )
        if where.startswith("validation"):
            metrics = _bad_metrics(dict(trainer.callback_metrics), "val/")
            if metrics:
                raise NonFiniteError(
                    f"validation metrics are non-finite at global step {trainer.global_step} "
                    f"({', '.join(metrics)}); the run stops instead of saving this model. Lower "
                    "the learning rate (--model.lr) or lambda (--model.lmbda), or check the data"
                )
        finite = getattr(pl_module, "finite_steps", None)
        skipped = getattr(pl_module, "nonfinite_total", 0)
        if trainer.state.fn == TrainerFn.FITTING and finite == 0 and skipped > 0:
            raise NonFiniteError(
                f"every training step so far had a non-finite loss ({skipped} skipped, none "
                f"trained) at {where}; the untrained model is not saved. Lower the learning "
                "rate (--model.lr) or lambda (--model.lmbda), or check the data"
            )

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:  # nothing is saved after it; the task's window decides
            self.check(trainer, pl_module, "validation")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer, pl_module, f"the end of epoch {trainer.current_epoch}")

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer, pl_module, "the end of training")
