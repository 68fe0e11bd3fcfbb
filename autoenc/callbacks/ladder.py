# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Learning curves of a variable-rate model: rate and PSNR at every quality of its ladder.

During validation the model is also run at each quality ``Q`` of its ladder on the first
``max_batches`` validation batches; ``val_ladder/bpp_q<Q>`` and ``val_ladder/psnr_q<Q>`` are
logged (estimated bits from the likelihoods, PSNR on the [0, 1] dB window), so TensorBoard
shows every operating point against step and, with its relative-time axis, against wall time.
Models without ``variable_rate`` are left alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override

from autoenc.entropy import bits


class QualityLadder(Callback):
    """Log estimated bpp and PSNR per quality of a variable-rate model at each validation."""

    def __init__(self, max_batches: int = 4) -> None:
        """``max_batches``: validation batches used per validation run (bounded cost)."""
        if max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {max_batches}")
        self.max_batches = max_batches
        self._sums: dict[int, list[float]] = {}

    @override
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._sums = {}

    @override
    @torch.no_grad()
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        model = getattr(pl_module, "model", None)
        if not getattr(model, "variable_rate", False) or batch_idx >= self.max_batches:
            return
        assert model is not None
        x = batch["image"]
        pixels = float(x.shape[0] * x.shape[-2] * x.shape[-1])
        for q in range(model.qualities):
            out = model(x, quality=q)
            mse = float(((out["x_hat"].float().clamp(0, 1) - x.float()) ** 2).mean())
            s = self._sums.setdefault(q, [0.0, 0.0, 0.0])
            s[0] += float(bits(out["likelihoods"])) / pixels
            s[1] += mse
            s[2] += 1.0

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for q, (bpp, mse, n) in sorted(self._sums.items()):
            pl_module.log(f"val_ladder/bpp_q{q}", bpp / n)
            pl_module.log(f"val_ladder/psnr_q{q}", -10.0 * math.log10(max(mse / n, 1e-12)))
