# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""On-device image quality metrics for validation and test."""

from __future__ import annotations

import logging
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.image import (
    MultiScaleStructuralSimilarityIndexMeasure,
    PeakSignalNoiseRatio,
    StructuralSimilarityIndexMeasure,
)
from typing_extensions import override

# One MS-SSIM size rule and one SSIM setting for training and evaluation.
from autoenc.metrics.image import MS_SSIM_MIN_SIZE, SSIM_KWARGS

log = logging.getLogger(__name__)


class ImageMetrics(Callback):
    """PSNR (data_range 1), SSIM and MS-SSIM of each val/test batch, updated on the device.

    The torchmetrics states live on the LightningModule's device (moved at ``setup``) and are
    updated with the step outputs where they are, so images are never copied to the host.
    ``compute()`` syncs the states across DDP ranks. MS-SSIM is only updated for batches whose
    sides are at least :data:`MS_SSIM_MIN_SIZE`; if no batch qualifies, ``<stage>/ms_ssim`` is
    not logged and a warning says why.
    """

    def __init__(self, ms_ssim: bool = True) -> None:
        """Args: ms_ssim: also compute MS-SSIM (where the image size allows)."""
        super().__init__()
        self.use_ms_ssim = ms_ssim
        self.metrics: dict[str, MetricCollection] = {}
        self._warned_small = False

    def _collection(self) -> MetricCollection:
        metrics: dict[str, Any] = {
            "psnr": PeakSignalNoiseRatio(data_range=1.0),
            "ssim": StructuralSimilarityIndexMeasure(data_range=1.0, **SSIM_KWARGS),
        }
        if self.use_ms_ssim:
            metrics["ms_ssim"] = MultiScaleStructuralSimilarityIndexMeasure(data_range=1.0)
        return MetricCollection(metrics)

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        base = self._collection()
        self.metrics = {s: base.clone(prefix=f"{s}/").to(pl_module.device) for s in ("val", "test")}

    def device_of_states(self) -> set[str]:
        """Devices holding the metric states (the GPU check records them)."""
        return {
            str(state.device)
            for collection in self.metrics.values()
            for metric in collection.values()
            for state in metric.metric_state.values()
            if isinstance(state, Tensor)
        }

    def _update(self, stage: str, outputs: Any) -> None:
        if not isinstance(outputs, dict) or "x_hat" not in outputs:
            return
        x_hat: Tensor = outputs["x_hat"].float().clamp_(0.0, 1.0)
        x: Tensor = outputs["x"].float()
        collection = self.metrics[stage]
        if collection[f"{stage}/psnr"].device != x.device:  # e.g. a device moved after setup
            collection.to(x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):
            for name, metric in collection.items():
                if name.endswith("ms_ssim") and min(x.shape[-2:]) < MS_SSIM_MIN_SIZE:
                    if not self._warned_small:
                        log.warning(
                            "MS-SSIM skipped: images of %s px are below the %d px it needs",
                            "x".join(map(str, x.shape[-2:])),
                            MS_SSIM_MIN_SIZE,
                        )
                        self._warned_small = True
                    continue
                metric.update(x_hat, x)

    def _log(self, stage: str, pl_module: LightningModule) -> None:
        for name, metric in self.metrics[stage].items():
            if metric.update_count == 0:
                continue
            pl_module.log(name, metric.compute(), prog_bar=name.endswith("psnr"))
            metric.reset()

    @override
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update("val", outputs)

    @override
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log("val", pl_module)

    @override
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._update("test", outputs)

    @override
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log("test", pl_module)
