# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Callbacks in isolation: GPU-memory warning, metric states, TensorBoard strip."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from autoenc.callbacks import DeviceMonitor, ImageMetrics
from autoenc.callbacks.tensorboard import comparison_strip

GIB = 1024**3


@pytest.mark.parametrize(("free_gib", "warns"), [(1.0, True), (7.9, False)])
def test_device_monitor_warns_about_foreign_gpu_memory(
    free_gib: float, warns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An 8 GiB card of which this process reserves nothing: 7 GiB used means a stray process.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (int(free_gib * GIB), 8 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: None)
    module = SimpleNamespace(device=torch.device("cuda", 0))
    monitor = DeviceMonitor(foreign_warn_gib=0.5)
    if warns:
        with pytest.warns(UserWarning, match="held by other processes"):
            monitor.on_fit_start(None, module)  # type: ignore[arg-type]
    else:
        monitor.on_fit_start(None, module)  # type: ignore[arg-type]


def test_image_metrics_keep_states_on_the_module_device() -> None:
    metrics = ImageMetrics()
    module = SimpleNamespace(device=torch.device("cpu"))
    metrics.setup(None, module, "fit")  # type: ignore[arg-type]
    x = torch.rand(2, 1, 176, 176)
    metrics._update("val", {"x": x, "x_hat": x.clone()})
    assert metrics.device_of_states() == {"cpu"}
    assert float(metrics.metrics["val"]["val/psnr"].compute()) > 100  # identical images
    assert float(metrics.metrics["val"]["val/ms_ssim"].compute()) == pytest.approx(1.0, abs=1e-4)


def test_image_metrics_skip_ms_ssim_below_its_minimum_size() -> None:
    metrics = ImageMetrics()
    metrics.setup(None, SimpleNamespace(device=torch.device("cpu")), "fit")  # type: ignore[arg-type]
    x = torch.rand(2, 1, 64, 64)
    metrics._update("val", {"x": x, "x_hat": (x + 0.05).clamp(0, 1)})
    assert metrics.metrics["val"]["val/ms_ssim"].update_count == 0
    assert metrics.metrics["val"]["val/psnr"].update_count == 1


def test_comparison_strip_layout() -> None:
    x = torch.zeros(3, 1, 16, 16)
    x_hat = torch.full_like(x, 0.1)
    strip = comparison_strip(x, x_hat)
    assert strip.shape == (1, 48, 48)
    assert torch.allclose(strip[:, :16, 16:32], x_hat[0])  # reconstruction column
    assert torch.allclose(strip[:, :16, 32:], torch.full((1, 16, 16), 0.4))  # |diff| x 4
