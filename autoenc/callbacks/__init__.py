# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Lightning callbacks of autoenc (listed in the YAML configs)."""

from autoenc.callbacks.checkpoint import RunCheckpoint
from autoenc.callbacks.guard import NonFiniteError, NonFiniteGuard
from autoenc.callbacks.ladder import QualityLadder
from autoenc.callbacks.metrics import ImageMetrics
from autoenc.callbacks.system import DeviceMonitor
from autoenc.callbacks.tensorboard import TensorBoardVisuals
from autoenc.callbacks.writer import PatchPredictionWriter

__all__ = [
    "DeviceMonitor",
    "ImageMetrics",
    "NonFiniteError",
    "NonFiniteGuard",
    "QualityLadder",
    "PatchPredictionWriter",
    "RunCheckpoint",
    "TensorBoardVisuals",
]
