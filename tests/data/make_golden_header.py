# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The golden ``.aec`` header: a fixed :class:`SceneHeader`, stored as format version 3 stores it.

``tests/test_header.py`` builds :func:`golden_header` and checks that it serialises to the
bytes of ``tests/data/golden_header.bin`` byte for byte, and that those bytes parse back to
the same header. A deliberate change of the header's layout means a new format version: bump
it, keep reading the old one, and regenerate with

    python tests/data/make_golden_header.py tests/data

The header is that of a 360 x 480 chip (a common ML tile size) of a map-projected σ⁰ product
coded by a variable-rate model with the exception layer and a per-scene offset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from autoenc.codec.container import encode_header
from autoenc.codec.header import ExceptionCoding, InputRecord, ModelRecord, SceneHeader
from autoenc.sar.calibration import Calibration
from autoenc.sar.geotiff import GeoMetadata, epsg_wkt
from autoenc.sar.normalisation import Normalisation
from autoenc.sar.offset import DbOffset
from autoenc.tiling import TileGrid


def golden_header() -> SceneHeader:
    """The fixed header (no randomness, no clock)."""
    geo = GeoMetadata(
        crs_wkt=epsg_wkt(32633),
        transform=(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0),
        tags={"AREA_OR_POINT": "Area"},
        nodata=float("nan"),
        description="VV",
        units="sigma0 linear",
    )
    return SceneHeader(
        autoenc="0.1.0",
        device="cpu",
        model=ModelRecord(
            "1d7cee00c0937feb5f23861a0d4e3cfcffc39ca00e925b6fbabd3bbc60e1c815",
            "wavelet-grdh.safetensors",
            6,
            0.356,
        ),  # fmt: skip
        normalisation=Normalisation(-25.0, 5.0, -30.0),
        fill_unit=0.5,
        exceptions=ExceptionCoding("keep", 0.05),
        input=InputRecord(
            "intensity",
            np.dtype("float32"),
            "linear intensity",
            1,
            "VV",
            Calibration(),
            DbOffset(-40.63),
        ),  # fmt: skip
        grid=TileGrid(360, 480, 512, 160, 4, 32),
        source="S1A_IW_GRDH_chip_0042.tif",
        geo=geo,
    )


def main(out: Path) -> None:
    """Write ``golden_header.bin`` into ``out``."""
    data = encode_header(golden_header().to_dict())
    (out / "golden_header.bin").write_bytes(data)
    print(f"{out / 'golden_header.bin'}: {len(data)} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent))
