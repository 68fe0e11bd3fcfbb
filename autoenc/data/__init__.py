# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Patch datasets: radiometry (sar), synthetic scenes (synth), on-disk format, DataModule."""
