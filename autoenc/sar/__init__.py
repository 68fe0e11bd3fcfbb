# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Numpy-only home of the scene and its radiometry, shared by ``prepare`` and the codec.

* :mod:`autoenc.sar.geotiff`: GeoTIFF bands in windows (the one rasterio package), metadata;
* :mod:`autoenc.sar.radiometry`: input kinds, dB <-> intensity, invalid-pixel reasons,
  zero-border extents, the block converter to dB and back;
* :mod:`autoenc.sar.calibration`: amplitude DN -> σ⁰ (constant or Sentinel-1 LUT);
* :mod:`autoenc.sar.normalisation`: the dB window record, dB <-> unit <-> uint16 code;
* :mod:`autoenc.sar.preprocessing`: the typed record a model carries from its dataset;
* :mod:`autoenc.sar.offset`: the per-scene gain into a model's window;
* :mod:`autoenc.sar.histogram`: fixed-bin dB histograms;
* :mod:`autoenc.sar.scene_input`: open a scene band as model input;
* :mod:`autoenc.sar.arrays`: numpy or torch, without importing torch.

Only :mod:`~autoenc.sar.normalisation` is re-exported here; importing this package loads
neither torch nor rasterio.
"""

from autoenc.sar.normalisation import (
    CODE_MAX,
    DEFAULT_DB_WINDOW,
    DEFAULT_NOISE_FLOOR_DB,
    Normalisation,
    codes_from_unit,
    unit_from_codes,
)

__all__ = [
    "CODE_MAX",
    "DEFAULT_DB_WINDOW",
    "DEFAULT_NOISE_FLOOR_DB",
    "Normalisation",
    "codes_from_unit",
    "unit_from_codes",
]
