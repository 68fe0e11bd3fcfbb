# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The Lightning task that trains any registered autoencoder variant.

The variant is injected (``model: class_path: autoenc.models.ResidualAutoencoder``) and stored in
the checkpoint's hyper-parameters as ``{"class_path", "init_args"}``, so
``CompressionTask.load_from_checkpoint(path)`` rebuilds the right network with no arguments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torchmetrics.functional.image import structural_similarity_index_measure
from typing_extensions import override

from autoenc.checkpoint_io import check_state_fits
from autoenc.entropy import bits
from autoenc.metrics.image import SSIM_KWARGS
from autoenc.models import AutoencoderBase, build_model, model_spec
from autoenc.sar.preprocessing import Preprocessing

SchedulerName = Literal["plateau", "cosine", "none"]


class NonFiniteLossError(RuntimeError):
    """Raised when the loss stays NaN/Inf for too many consecutive training steps."""


def ssim_fp32(x_hat: Tensor, x: Tensor) -> Tensor:
    """SSIM over [0, 1] images computed in fp32 with autocast off (stable under AMP).

    torchmetrics' differentiable SSIM with the project's setting
    (:data:`autoenc.metrics.image.SSIM_KWARGS`).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        value = structural_similarity_index_measure(
            x_hat.float(), x.float(), data_range=1.0, **SSIM_KWARGS
        )
    assert isinstance(value, Tensor)
    return value


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


log = logging.getLogger(__name__)


def channels_last_unsafe(model: nn.Module) -> list[str]:
    """Names of the convolutions that must not run in channels-last format.

    Strided 1x1 convolutions whose input channels are not a multiple of 8: their weight-gradient
    kernel on CPU writes out of bounds in channels-last format (heap corruption, a crash a few
    steps later; torch 2.13.0+cpu). Such narrow layers gain nothing from channels-last anyway.
    """
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d)
        and tuple(m.kernel_size) == (1, 1)
        and max(m.stride) > 1
        and m.in_channels % 8
    ]


class CompressionTask(LightningModule):
    """Train a codec on [0, 1] dB patches: distortion ``D = w_mse·MSE + w_ssim·(1 − SSIM)``.

    With ``lmbda`` the objective is rate–distortion, ``λ·D + R`` (R in bits per pixel from the
    likelihoods). Without it the transforms minimise ``D`` alone and the entropy model is
    fitted on detached latents, so every variant can still write real files. Both add the
    entropy models' auxiliary loss. Validation/test metrics (PSNR, SSIM, MS-SSIM) are computed
    on the device by :class:`autoenc.callbacks.ImageMetrics`, from the dict each eval step
    returns; the test also codes every batch for real (``test/bpp_real``).
    """

    def __init__(
        self,
        model: AutoencoderBase,
        w_mse: float = 0.5,
        w_ssim: float = 0.5,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        scheduler: SchedulerName = "plateau",
        plateau_factor: float = 0.5,
        plateau_patience: int = 10,
        warmup_steps: int = 100,
        max_nonfinite_steps: int = 10,
        channels_last: bool = False,
        compile: bool = False,
        lmbda: float | None = None,
        aux_lr: float = 1e-3,
    ) -> None:
        """Wrap ``model``.

        Args:
            model: an autoenc network (instance, or its ``{"class_path", "init_args"}`` spec).
            w_mse: weight of the MSE term.
            w_ssim: weight of the ``1 − SSIM`` term (SSIM always in fp32).
            lr: AdamW learning rate.
            weight_decay: AdamW weight decay.
            scheduler: ``plateau`` (ReduceLROnPlateau on ``val/loss``), ``cosine`` (linear
                warm-up then cosine decay, per step) or ``none``.
            plateau_factor: LR factor of ``plateau``.
            plateau_patience: epochs without ``val/loss`` improvement before ``plateau`` decays.
            warmup_steps: linear warm-up optimizer steps of ``cosine``.
            max_nonfinite_steps: consecutive NaN/Inf losses tolerated (each skipped, counted and
                logged) before the run stops with :class:`NonFiniteLossError`.
            channels_last: run the network and its inputs in channels-last memory format (often
                faster convolutions on tensor-core GPUs under mixed precision).
            compile: compile the network with ``torch.compile`` (in place, so checkpoint keys stay
                the same). Off by default: on an H200 it gave no speed-up for these variants
                (benchmarks/results/gpu-2026-11-26-h200-compile.json) and costs a minute first.
            lmbda: rate–distortion trade-off λ of ``λ·D + R``; ``None`` trains without a rate
                term (the entropy model is then fitted on detached latents).
            aux_lr: learning rate of the entropy models' quantiles (their own parameter group).
        """
        super().__init__()
        if isinstance(model, Mapping):
            model = build_model(model)
        if not isinstance(model, AutoencoderBase):
            raise TypeError(f"model must be an autoenc AutoencoderBase, got {type(model).__name__}")
        if w_mse < 0 or w_ssim < 0 or w_mse + w_ssim == 0:
            raise ValueError(f"loss weights must be >= 0 and not both 0, got {w_mse=}, {w_ssim=}")
        if lmbda is not None and not lmbda > 0:
            raise ValueError(f"lmbda must be > 0 (or null for no rate term), got {lmbda!r}")
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")
        self.save_hyperparameters(ignore=["model"])
        self.hparams["model"] = model_spec(model)  # what load_from_checkpoint rebuilds
        self.model = model
        self.w_mse = w_mse
        self.w_ssim = w_ssim
        self.lr = lr
        self.weight_decay = weight_decay
        self.scheduler = scheduler
        self.plateau_factor = plateau_factor
        self.plateau_patience = plateau_patience
        self.warmup_steps = warmup_steps
        self.max_nonfinite_steps = max_nonfinite_steps
        unsafe = channels_last_unsafe(model) if channels_last else []
        if unsafe:
            log.warning(
                "channels_last switched off for this model: torch's CPU kernel for the backward "
                "pass of strided 1x1 convolutions with input channels not a multiple of 8 "
                "corrupts memory in channels-last format (torch 2.13, seen on AMD EPYC); "
                "affected layers: %s",
                ", ".join(unsafe[:4]) + (" ..." if len(unsafe) > 4 else ""),
            )
        self.channels_last = channels_last and not unsafe
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if compile:
            self.model.compile()  # nn.Module.compile: in place, state_dict keys unchanged
        self.nonfinite_consecutive = 0
        self.nonfinite_total = 0
        self.finite_steps = 0  # training steps with a finite loss (NonFiniteGuard reads it)
        self.lmbda = lmbda
        self.aux_lr = aux_lr
        self.preprocessing: Preprocessing | None = None  # the training data's, for the codec

    @property
    def downsampling_factor(self) -> int:
        """Spatial reduction of the wrapped network (inputs must be multiples of it)."""
        return self.model.downsampling_factor

    @override
    def forward(self, x: Tensor) -> dict[str, Any]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x, detach_rate=self.lmbda is None)

    @staticmethod
    def bpp(out: Mapping[str, Any], x: Tensor) -> Tensor:
        """Estimated bits per pixel from the likelihoods (fp32)."""
        return bits(out["likelihoods"]) / float(x.shape[0] * x.shape[-2] * x.shape[-1])

    def objective(self, distortion: Tensor, bpp: Tensor) -> Tensor:
        """``λ·D + R``, or ``D + R`` where R reaches only the (detached) entropy model."""
        return distortion * self.lmbda + bpp if self.lmbda is not None else distortion + bpp

    def loss(self, x_hat: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(loss, mse, ssim)``, all computed in fp32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            mse = F.mse_loss(x_hat.float(), x.float())
        ssim = ssim_fp32(x_hat, x)
        return self.w_mse * mse + self.w_ssim * (1.0 - ssim), mse, ssim

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor | None:
        x = batch["image"]
        out = self(x)
        distortion, mse, ssim = self.loss(out["x_hat"], x)
        bpp = self.bpp(out, x)
        aux = self.model.aux_loss()
        loss = self.objective(distortion, bpp) + aux
        # Every DDP rank must skip together, or the gradient all-reduce would hang.
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)))
        if not finite:
            self.nonfinite_consecutive += 1
            self.nonfinite_total += 1
            self.log("train/nonfinite_steps", float(self.nonfinite_total), batch_size=x.shape[0])
            if self.nonfinite_consecutive >= self.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"training loss was non-finite ({loss.item()}) for "
                    f"{self.nonfinite_consecutive} consecutive steps (max_nonfinite_steps="
                    f"{self.max_nonfinite_steps}) at global step {self.global_step}; "
                    f"{self.nonfinite_total} non-finite steps in total. Lower the learning rate, "
                    "use bf16-mixed instead of 16-mixed, or check the data for NaN/Inf."
                )
            return None  # skipped, but counted and logged above
        self.nonfinite_consecutive = 0
        self.finite_steps += 1
        n = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/mse", mse, batch_size=n)
        self.log("train/ssim", ssim, batch_size=n)
        self.log("train/distortion", distortion, batch_size=n)
        self.log("train/bpp", bpp, prog_bar=True, batch_size=n)
        self.log("train/aux_loss", aux, batch_size=n)
        return loss

    @override
    def configure_callbacks(self) -> list[Callback]:
        from autoenc.callbacks.guard import NonFiniteGuard  # autoenc.callbacks imports this module

        return [NonFiniteGuard()]

    @override
    def on_fit_start(self) -> None:
        manifest = getattr(getattr(self.trainer, "datamodule", None), "manifest", None)
        if manifest:
            self.preprocessing = Preprocessing.from_manifest(manifest)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["autoenc_nonfinite"] = {
            "consecutive": self.nonfinite_consecutive,
            "total": self.nonfinite_total,
            "finite": self.finite_steps,
        }
        # Coding tables travel in the checkpoint: encoder and decoder must use identical ones.
        self.model.update(force=True)
        state = checkpoint.get("state_dict", {})
        for name, buf in self.named_buffers():
            if name in state:
                state[name] = buf.detach().clone()
        if self.preprocessing is not None:
            checkpoint["autoenc_preprocessing"] = self.preprocessing.to_dict()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        counts = checkpoint.get("autoenc_nonfinite", {})
        self.nonfinite_consecutive = int(counts.get("consecutive", 0))
        self.nonfinite_total = int(counts.get("total", 0))
        # Older checkpoints lack the count: their optimizer steps were finite ones.
        self.finite_steps = int(counts.get("finite", checkpoint.get("global_step", 0)))
        self.preprocessing = self._preprocessing_of(checkpoint)
        # Table buffers are empty in a fresh module: size them to the saved ones before loading.
        own = dict(self.named_buffers())
        for name, saved in checkpoint.get("state_dict", {}).items():
            if name in own and own[name].shape != saved.shape:
                own[name].resize_(saved.shape)
        if "state_dict" in checkpoint:  # a one-line error instead of load_state_dict's traceback
            trainer = self._trainer_or_none()
            path = trainer.ckpt_path if trainer is not None else None
            check_state_fits(self.state_dict(), checkpoint["state_dict"], path)

    def _preprocessing_of(self, checkpoint: dict[str, Any]) -> Preprocessing | None:
        """The checkpoint's ``autoenc_preprocessing`` record (None when it has none).

        Raises:
            ValueError: an invalid record, naming the checkpoint and the key.
        """
        record = checkpoint.get("autoenc_preprocessing")
        if record is None:
            return None
        try:
            return Preprocessing.from_dict(record)
        except ValueError as e:
            trainer = self._trainer_or_none()
            path = trainer.ckpt_path if trainer is not None else None
            raise ValueError(f"checkpoint {path or '(being loaded)'}: {e}") from None

    def _trainer_or_none(self) -> Any:
        try:
            return self.trainer
        except RuntimeError:  # load_from_checkpoint: no Trainer attached
            return None

    def _eval_step(self, batch: dict[str, Any], stage: str) -> dict[str, Tensor]:
        x = batch["image"]
        out = self(x)
        distortion, _, _ = self.loss(out["x_hat"], x)
        bpp = self.bpp(out, x)
        n = x.shape[0]
        loss = self.objective(distortion, bpp) if self.lmbda is not None else distortion
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=n)
        self.log(f"{stage}/bpp", bpp, prog_bar=stage == "val", sync_dist=True, batch_size=n)
        if stage == "test":
            strings = self.model.compress(x)["strings"]
            nbytes = sum(len(s) for group in strings for s in group)
            real = torch.tensor(8.0 * nbytes / (n * x.shape[-2] * x.shape[-1]), device=x.device)
            self.log("test/bpp_real", real, sync_dist=True, batch_size=n)
            self.log("test/bpp_gap", real - bpp, sync_dist=True, batch_size=n)
        return {"x_hat": out["x_hat"].detach(), "x": x, "y": out["y"].detach()}

    @override
    def on_test_start(self) -> None:
        self.model.update(force=True)

    @override
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    @override
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        out = self(batch["image"])
        return {"x_hat": out["x_hat"], "y": out["y"], "index": batch["index"]}

    @override
    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the transforms' gradients only; the entropy models' are left alone."""
        if not gradient_clip_val:
            return
        params = [p for p in self.model.network_parameters() if p.grad is not None]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    @override
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        m = self.model
        groups: list[dict[str, Any]] = [
            {"params": m.network_parameters(), "name": "network"},
            {"params": m.entropy_parameters(), "weight_decay": 0.0, "name": "entropy"},
            {"params": m.aux_parameters(), "lr": self.aux_lr, "weight_decay": 0.0,
             "name": "quantiles"},
        ]  # fmt: skip
        optimizer = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        scheduler: Any
        if self.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=self.plateau_factor, patience=self.plateau_patience
            )
            config: dict[str, Any] = {
                "scheduler": scheduler,
                "monitor": "val/loss",
                "interval": "epoch",
            }
        else:
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            warmup = min(self.warmup_steps, total - 1) if self.scheduler == "cosine" else 0

            def factor(step: int) -> float:
                return warmup_cosine(step, warmup, total) if self.scheduler == "cosine" else 1.0

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            config = {"scheduler": scheduler, "interval": "step"}
        # Named "lr" so LearningRateMonitor logs the key `lr`.
        return {"optimizer": optimizer, "lr_scheduler": {**config, "name": "lr"}}  # type: ignore[typeddict-item]
