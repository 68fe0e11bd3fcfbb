# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Device and memory monitor: catches stray processes holding GPU memory before training."""

from __future__ import annotations

import resource

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

GIB = 1024**3


class DeviceMonitor(Callback):
    """Log the device and its memory at fit start; log peak memory every epoch.

    On CUDA, memory used on the device but not reserved by this process (another process, e.g.
    a forgotten notebook kernel) above ``foreign_warn_gib`` triggers a warning. On CPU the peak
    resident set size of the process is logged instead.
    """

    def __init__(self, foreign_warn_gib: float = 0.5) -> None:
        """Args: foreign_warn_gib: warn when other processes hold more than this much GPU memory."""
        super().__init__()
        self.foreign_warn_gib = foreign_warn_gib

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        device = pl_module.device
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            ours = torch.cuda.memory_reserved(device)
            foreign = max(total - free - ours, 0)
            name = torch.cuda.get_device_name(device)
            rank_zero_info(
                f"autoenc: device {device} ({name}): {total / GIB:.2f} GiB total, "
                f"{free / GIB:.2f} GiB free, {foreign / GIB:.2f} GiB held by other processes"
            )
            if foreign / GIB > self.foreign_warn_gib:
                rank_zero_warn(
                    f"{foreign / GIB:.2f} GiB of {total / GIB:.2f} GiB on {device} ({name}) is "
                    "held by other processes; check `nvidia-smi` for stray jobs before a long run"
                )
            torch.cuda.reset_peak_memory_stats(device)
        else:
            rank_zero_info(f"autoenc: device {device} ({torch.get_num_threads()} threads)")

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        device = pl_module.device
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / GIB
            pl_module.log("sys/peak_gpu_mem_gib", peak, sync_dist=True, reduce_fx="max")
            torch.cuda.reset_peak_memory_stats(device)
        else:
            # ru_maxrss is in KiB on Linux.
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
            pl_module.log("sys/peak_rss_gib", peak, sync_dist=True, reduce_fx="max")
