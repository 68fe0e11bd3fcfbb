# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""The typed, compact ``.aec`` header (issue 13, item 3): golden bytes, round trips, versions.

``tests/data/golden_header.bin`` holds the stored header of :func:`golden_header` (a 360 x 480
chip; ``tests/data/make_golden_header.py``). Before format version 3 that header was verbose
JSON: a 360 x 480 scene's was 1,783 B (0.08 bpp), more than its tile payload at low rates.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoenc.codec.container import (
    FORMAT_VERSION,
    ContainerReader,
    CorruptStreamError,
    decode_header,
    encode_header,
)
from autoenc.codec.header import SceneHeader, parse_header
from autoenc.sar.calibration import Calibration, CalibrationLUT
from autoenc.sar.geotiff import GeoMetadata, epsg_wkt

sys.path.insert(0, str(Path(__file__).parent / "data"))
from make_golden_header import golden_header  # noqa: E402

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_header.bin"
BIG = 1 << 40  # a file size that limits nothing


def _parse(d: dict[str, Any], version: int = FORMAT_VERSION) -> SceneHeader:
    return parse_header(json.loads(json.dumps(d)), "x.aec", BIG, version)


def test_golden_header_round_trips_byte_for_byte() -> None:
    stored = GOLDEN.read_bytes()
    h = golden_header()
    assert encode_header(h.to_dict()) == stored  # the writer's bytes have not changed
    back = _parse(json.loads(decode_header(stored, FORMAT_VERSION)))
    assert encode_header(back.to_dict()) == stored
    assert back.to_dict() == h.to_dict()
    assert back.model == h.model and back.grid == h.grid and back.geo.crs_wkt == epsg_wkt(32633)
    assert back.input.offset.offset_db == -40.63 and back.window == (-25.0, 5.0)
    assert np.isnan(back.geo.nodata)  # NaN nodata travels as "nan"
    assert len(stored) <= 600, len(stored)  # 517 B, was 1,783 B for such a chip


def test_header_with_lut_and_gcps_round_trips() -> None:
    lines, pixels = np.array([0.0, 50.0, 99.0]), np.array([0.0, 40.0, 79.0])
    lut = CalibrationLUT(lines, pixels, np.array([[400.0, 450.0, 500.0]] * 3), "sigmaNought", "x")
    gcps = [{"row": float(r), "col": float(c), "x": 10 + c / 1e3, "y": 44 - r / 1e3, "z": 0.0,
             "id": str(i + 1), "info": ""}
            for i, (r, c) in enumerate([(0, 0), (0, 79), (99, 0), (99, 79)])]  # fmt: skip
    geo = GeoMetadata(gcps=gcps, gcps_crs_wkt=epsg_wkt(4326), description="VH")
    g = golden_header()
    inp = g.input.__class__("amplitude", np.dtype("uint16"), "sigma0", 1, "VH",
                            Calibration(None, lut), g.input.offset)  # fmt: skip
    h = SceneHeader(g.autoenc, g.device, g.model, g.normalisation, g.fill_unit, g.exceptions,
                    inp, g.grid, g.source, geo)  # fmt: skip
    d = h.to_dict()
    assert d["geo"]["gcps"][1] == [0.0, 79.0, 10.079, 44.0, 0.0]  # compact rows
    assert d["geo"]["gcps_crs_wkt"] == "EPSG:4326"
    back = _parse(d)
    assert back.to_dict() == d and back.geo == geo
    assert back.input.calibration.lut is not None
    np.testing.assert_array_equal(back.input.calibration.lut.values, lut.values)


def test_version_2_header_still_parses(tmp_path: Path) -> None:
    with ContainerReader(DATA / "v2_scene.aec") as r:
        raw, version = r.header, r.version
    assert version == 2 and "spec" in raw["model"] and "nodata" in raw["input"]
    h = _parse(raw, version=2)
    assert h.input.offset.offset_db == 0.0 and h.exceptions.mode == "keep"
    assert h.geo.crs_wkt == raw["geo"]["crs_wkt"]  # the full WKT of a v2 file


@pytest.mark.parametrize(
    ("edit", "version", "match"),
    [
        (lambda d: d["input"].pop("offset_db"), 3, "input.offset_db"),
        (lambda d: d["input"].update(offset_db=250.0), 3, "input.offset_db"),
        (lambda d: d["input"].update(offset_db="0"), 3, "input.offset_db"),
        (lambda d: d["geo"].update(crs_wkt="EPSG:0"), 3, "geo"),
        (lambda d: d["geo"].update(crs_wkt="EPSG:99999999"), 3, "geo"),
        (lambda d: d["geo"].update(extra=1), 3, "geo"),
        (lambda d: d["geo"].update(gcps=[[1.0, 2.0, 3.0]]), 3, "geo"),
        (lambda d: d["model"].update(quality=1.5), 3, "model.quality"),
        (lambda d: d["model"].update(spec="x"), 3, "model.spec"),
    ],
)
def test_bad_version_3_fields_are_named(edit: Any, version: int, match: str) -> None:
    d = copy.deepcopy(golden_header().to_dict())
    edit(d)
    with pytest.raises(CorruptStreamError, match=match):
        _parse(d, version)


def test_a_v3_field_in_a_v2_file_is_refused() -> None:
    with ContainerReader(DATA / "v2_scene.aec") as r:
        raw = copy.deepcopy(r.header)
    raw["input"]["offset_db"] = -3.0  # a v2 reader would have ignored it: wrong values
    with pytest.raises(CorruptStreamError, match="not before version 3"):
        _parse(raw, version=2)
