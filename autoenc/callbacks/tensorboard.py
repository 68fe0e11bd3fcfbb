# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""TensorBoard visuals: fixed validation patches, latent histograms, hparams with final metrics."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from typing_extensions import override


def _experiment(trainer: Trainer) -> Any | None:
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def comparison_strip(x: Tensor, x_hat: Tensor) -> Tensor:
    """Tile ``original | reconstruction | |difference|`` rows into one image.

    Args:
        x: (N, 1, H, W) originals in [0, 1].
        x_hat: (N, 1, H, W) reconstructions.

    Returns:
        (1, N*H, 3*W) image; the difference is stretched ×4 so small errors are visible.
    """
    x_hat = torch.nan_to_num(x_hat, nan=0.0)  # a diverged model: show black, not a cast warning
    diff = ((x_hat - x).abs() * 4.0).clamp(0.0, 1.0)
    rows = torch.cat([x, x_hat.clamp(0.0, 1.0), diff], dim=-1)  # (N, 1, H, 3W)
    return torch.cat(list(rows), dim=-2)  # (1, N*H, 3W)


class TensorBoardVisuals(Callback):
    """Fixed validation patches, latent histograms and final hparams in TensorBoard.

    Every validation epoch shows the same patches as original | reconstruction | difference and
    a histogram of their finite latents (none when all are NaN/Inf: the run is then stopped by
    :class:`~autoenc.callbacks.guard.NonFiniteGuard`); at fit end, the hparams are logged with
    the final metrics.
    """

    def __init__(self, num_images: int = 4, final_metrics: tuple[str, ...] = ("val/psnr",)) -> None:
        """Configure the visuals.

        Args:
            num_images: validation patches shown (the first ones of the split, always the same).
            final_metrics: logged metrics recorded next to the hparams when fit ends.
        """
        super().__init__()
        self.num_images = num_images
        self.final_metrics = final_metrics
        self._fixed: Tensor | None = None

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        experiment = _experiment(trainer)
        if experiment is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if self._fixed is None:
            dataset = trainer.datamodule.datasets["val"]  # type: ignore[attr-defined]
            n = min(self.num_images, len(dataset))
            self._fixed = torch.stack([dataset.image(i) for i in range(n)])
        x = self._fixed.to(pl_module.device)
        with torch.no_grad():
            out = pl_module(x)
        step = trainer.global_step
        experiment.add_image("val/reconstructions", comparison_strip(x, out["x_hat"]).float(), step)
        y = out["y"].float().flatten().cpu()
        y = y[torch.isfinite(y)]  # a diverged model's NaN latents: NonFiniteGuard reports those
        if y.numel():
            experiment.add_histogram("latent/y", y, step)

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                metrics = {
                    f"hp/{k.replace('/', '_')}": float(v)
                    for k, v in trainer.callback_metrics.items()
                    if k in self.final_metrics
                }
                ckpt = trainer.checkpoint_callback
                best = getattr(ckpt, "best_model_score", None)
                if best is not None:
                    metrics["hp/best_score"] = float(best)
                logger.log_hyperparams(dict(pl_module.hparams), metrics)
