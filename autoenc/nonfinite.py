# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Never skip a NaN/Inf loss silently, and never stall the GPU to find out.

The predecessor dropped 3-87 batches per epoch without a word. Here every non-finite loss is
counted on the device; the optimizer step it belongs to is skipped *on the device* by a fused
AdamW reading ``found_inf`` (the mechanism GradScaler uses), and the counts are read back on the
host only every ``check_every`` steps on CUDA (every step elsewhere, where reading is free). After
``max_consecutive`` non-finite losses in a row the run stops with :class:`NonFiniteLossError`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class NonFiniteLossError(RuntimeError):
    """Raised when the loss stays NaN/Inf for too many consecutive training steps."""


class NonFiniteGuard:
    """Device-side counters of non-finite losses, with an optimizer-step skip flag."""

    def __init__(self, max_consecutive: int, check_every: int = 10) -> None:
        """Stop after ``max_consecutive`` bad losses; on CUDA, read counts every ``check_every``."""
        if max_consecutive < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.check_every = max(int(check_every), 1)
        self._saved = {"consecutive": 0, "total": 0}
        self.consecutive: Tensor | None = None  # float32 scalars on the loss's device
        self.total: Tensor | None = None
        self.window: Tensor | None = None  # 1.0 if any loss since the last optimizer step was bad

    def observe(self, loss: Tensor, world_size: int = 1, reduce: Any = None) -> Tensor:
        """Count ``loss``; returns the running total (a device tensor, for logging).

        Under DDP, ``reduce(t, reduce_op="max")`` makes a bad loss on any rank bad on all, so
        every rank skips the same optimizer step (the all-reduced gradients are NaN on all).
        """
        if self.total is None or self.total.device != loss.device:
            self.consecutive = torch.tensor(float(self._saved["consecutive"]), device=loss.device)
            self.total = torch.tensor(float(self._saved["total"]), device=loss.device)
            self.window = torch.zeros((), device=loss.device)
        assert self.consecutive is not None and self.window is not None
        bad = (~torch.isfinite(loss.detach())).to(torch.float32)
        if world_size > 1 and reduce is not None:
            bad = reduce(bad, reduce_op="max")
        self.window = torch.maximum(self.window, bad)
        self.total = self.total + bad
        self.consecutive = (self.consecutive + 1.0) * bad  # resets to 0 on a finite loss
        return self.total

    def due(self, step: int, device: torch.device) -> bool:
        """Whether to read the counts now (always off CUDA, where it costs no sync)."""
        return device.type != "cuda" or (step + 1) % self.check_every == 0

    def window_is_bad(self) -> bool:
        """Host read of the skip flag (used only when the optimizer cannot skip by itself)."""
        return self.window is not None and bool(self.window.item() > 0)

    def take_window(self) -> Tensor | None:
        """The skip flag for the coming optimizer step; resets it for the next one."""
        if self.window is None:
            return None
        flag = self.window
        self.window = torch.zeros_like(flag)
        return flag

    def check(self, global_step: int) -> None:
        """Raise :class:`NonFiniteLossError` once the consecutive count reaches the limit."""
        if self.consecutive is None:
            return
        consecutive = int(self.consecutive.item())
        if consecutive >= self.max_consecutive:
            total = int(self.total.item()) if self.total is not None else consecutive
            raise NonFiniteLossError(
                f"training loss was non-finite (NaN/Inf) for {consecutive} consecutive steps "
                f"(max_nonfinite_steps={self.max_consecutive}) at global step {global_step}; "
                f"{total} non-finite steps in total, each skipped. Lower the learning rate, "
                "use bf16-mixed instead of 16-mixed, or check the data for NaN/Inf."
            )

    def state_dict(self) -> dict[str, int]:
        """Counts as plain ints (read once, at checkpoint time)."""
        if self.total is None or self.consecutive is None:
            return dict(self._saved)
        return {"consecutive": int(self.consecutive.item()), "total": int(self.total.item())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore counts; device tensors are rebuilt at the next :meth:`observe`."""
        self._saved = {k: int(state.get(k, 0)) for k in ("consecutive", "total")}
        self.consecutive = self.total = self.window = None
