# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""What must stop ``autoenc prepare`` instead of ending with exit 0 and a useless dataset.

* a scene smaller than the patch yields nothing: a warning names it;
* training values that cannot be SAR backscatter in dB (their 1st..99th percentiles spanning
  under :data:`MIN_SPAN_DB`), or a window holding under :data:`MIN_INSIDE` of them, mean the
  values were read as the wrong kind (or the window is wrong): an error, before any shard of an
  earlier dataset is touched;
* a dataset with no patches at all, or none in a training split that has scenes: an error
  (exit 2); val/test splits with scenes but no patches: a warning;
* an explicit ``--calibration`` (a constant or an XML file) when no input scene is amplitude
  DN, the only kind it applies to: an error, before pass 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from autoenc.data.scan import clip_fractions, percentile_db
from autoenc.sar.geotiff import SceneError, SceneReader
from autoenc.sar.scene_input import explicit_calibration

#: Narrowest plausible 1..99 % spread of σ⁰/γ⁰ in dB (GRD speckle alone spreads about 10 dB).
MIN_SPAN_DB = 2.0
#: Least share of the training scenes' valid pixels that must lie inside the window.
MIN_INSIDE = 0.5


def too_small(scene_id: str, height: int, width: int, patch_size: int) -> str | None:
    """The warning for a scene that cannot hold one patch, or ``None``."""
    if height >= patch_size and width >= patch_size:
        return None
    return (
        f"scene {scene_id} ({height}x{width} px) is smaller than the patch size "
        f"{patch_size}x{patch_size}: it yields no patches"
    )


def check_window(
    train_hist: NDArray[np.int64] | None,
    vmin: float,
    vmax: float,
    kinds: Mapping[str, tuple[str, str]],
) -> None:
    """Refuse training values (or a window) that cannot be SAR backscatter in dB.

    ``train_hist`` is the summed dB histogram of the training scenes (``None``: none);
    ``kinds`` maps each training scene to its ``(input_kind, reason)``, named in the error.

    Raises:
        ValueError: the training values' 1st..99th percentiles span under :data:`MIN_SPAN_DB`,
            or the window holds under :data:`MIN_INSIDE` of them.
    """
    if train_hist is None or int(train_hist.sum()) == 0:
        return
    spread = percentile_db(train_hist, 99.0) - percentile_db(train_hist, 1.0)
    clip = clip_fractions(train_hist, vmin, vmax)
    inside = 1.0 - clip["clipped_low"] - clip["clipped_high"]
    if spread < MIN_SPAN_DB:
        problem = (
            f"the training values' 1st..99th percentiles span only {spread:.3g} dB "
            f"(under {MIN_SPAN_DB:g} dB; dB window {vmin:.3f}..{vmax:.3f})"
        )
    elif inside < MIN_INSIDE:
        problem = (
            f"the dB window {vmin:.3f}..{vmax:.3f} holds only {inside:.1%} of the training "
            f"pixels (under {MIN_INSIDE:.0%})"
        )
    else:
        return
    read = "; ".join(f"{sid} as {k} ({why})" for sid, (k, why) in sorted(kinds.items())[:3])
    more = f" and {len(kinds) - 3} more" if len(kinds) > 3 else ""
    raise ValueError(
        f"{problem}, implausible for SAR backscatter in dB: the input kind (or the window) is "
        f"likely wrong (training scenes read {read}{more}); pass --input-kind or --db-window"
    )


def check_patches(scenes: Mapping[str, Mapping[str, Any]], patch_size: int) -> list[str]:
    """Refuse a dataset without patches where training needs them; warnings for the rest.

    ``scenes`` is the manifest's ``scenes`` (``split``, ``num_patches``, ``shape``,
    ``patches``).

    Raises:
        ValueError: no patch at all, or a train split with scenes and no patch.
    """
    by_split: dict[str, list[str]] = {}
    for sid, s in scenes.items():
        by_split.setdefault(str(s["split"]), []).append(sid)

    def count(ids: list[str]) -> int:
        return sum(int(scenes[s]["num_patches"]) for s in ids)

    def why(ids: list[str]) -> str:
        small = [
            f"{s} ({scenes[s]['shape'][0]}x{scenes[s]['shape'][1]})"
            for s in ids
            if too_small(s, int(scenes[s]["shape"][0]), int(scenes[s]["shape"][1]), patch_size)
        ]
        rej = {
            r: sum(int(scenes[s]["patches"]["rejected"][r]) for s in ids)
            for r in ("invalid", "saturated", "flat")
        }
        cand = sum(int(scenes[s]["patches"]["candidates"]) for s in ids)
        parts = [f"smaller than {patch_size}x{patch_size}: {', '.join(small)}"] if small else []
        rejected = "/".join(f"{v} {k}" for k, v in rej.items())
        parts.append(f"{cand} candidate(s) rejected {rejected}")
        return "; ".join(parts)

    hint = "lower --patch-size, or relax --min-valid/--max-saturated/--min-std-db"
    everything = list(scenes)
    if count(everything) == 0:
        raise ValueError(
            f"no patches: none of the {len(everything)} scene(s) yields a {patch_size}x"
            f"{patch_size} patch that passes the filter ({why(everything)}); {hint}"
        )
    train = by_split.get("train", [])
    if train and count(train) == 0:
        raise ValueError(
            f"no patches in the train split ({len(train)} scene(s): {why(train)}); {hint}"
        )
    return [
        f"the {split} split has {len(ids)} scene(s) but no patches ({why(ids)})"
        for split, ids in sorted(by_split.items())
        if split != "train" and ids and count(ids) == 0
    ]


def check_calibration_used(
    spec: str, paths: Iterable[Path], open_: Callable[[Path], tuple[SceneReader, Any, Any]]
) -> None:
    """Refuse an explicit ``--calibration`` when none of ``paths`` is an amplitude scene.

    ``open_(path)`` is :func:`autoenc.sar.scene_input.open_input` with prepare's options
    (reader, converter, manifest entry); scenes are opened in order up to the first amplitude
    one, unreadable ones skipped (pass 1 reports them).

    Raises:
        ValueError: naming the option, its value and the kinds seen.
    """
    if not explicit_calibration(spec):
        return
    kinds: set[str] = set()
    for path in paths:
        try:
            reader, _, info = open_(path)
        except (SceneError, ValueError, OSError):
            continue
        reader.close()
        kind = str(info["input_kind"])
        if kind == "amplitude":
            return
        kinds.add(kind)
    if kinds:
        raise ValueError(
            f"--calibration {spec.strip()} applies to amplitude DN, but no input scene is "
            f"amplitude (input kinds: {', '.join(sorted(kinds))}); drop --calibration"
        )
