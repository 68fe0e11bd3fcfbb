# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Speckle statistics of the synthetic products beside their targets (real IW GRD and SLC).

Generates the default synthetic scenes (``autoenc synth`` content, seed 0) for each product and
measures, with the estimator used on real Sentinel-1 data (:mod:`autoenc.data.speckle_stats`):
the median over 256² patches of the lag-1/2/3 autocorrelation of the dB residual (image minus
its 9 x 9 mean) along rows and columns, point targets masked; the same lag-1 of the product's
speckle alone (a flat reflectivity); the median ENL of 32 x 32 edge-free blocks (ratio image
intensity / truth); and the shares of truth pixels above +5 dB and below −25 dB. Prints the
README's table; exits 1 if a product misses its target.

    python benchmarks/synth_stats.py [--scenes 4] [--size 1024] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_json_argument, save_record  # noqa: E402

from autoenc.data.speckle_stats import markdown_table, measure_products  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Measure every product, print the table, write the JSON where ``--json`` asks."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--size", type=int, default=1024)
    add_json_argument(p, "synth-stats")
    args = p.parse_args(argv)
    record = measure_products(args.scenes, args.size)
    print(markdown_table(record))
    save_record(args.json, "synth-stats", record)
    return 0 if all(v["ok"] for v in record["products"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
