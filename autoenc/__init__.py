# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""autoenc: learned compression for Sentinel-1 SAR images."""

__version__ = "0.1.0"
