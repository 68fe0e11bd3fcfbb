# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""What a codec must repeat to feed a scene to a model trained on a dataset.

:class:`Preprocessing` is built from a dataset manifest when training starts
(:meth:`Preprocessing.from_manifest`), stored in every checkpoint (``autoenc_preprocessing``)
and every safetensors export as :meth:`Preprocessing.to_dict`, and read back with
:meth:`Preprocessing.from_dict`.

Invariants:
    * ``Preprocessing.from_dict(p.to_dict()) == p``, and for a dict ``d`` written by autoenc
      (every key present) ``Preprocessing.from_dict(d).to_dict() == d``: files stay
      byte-compatible;
    * keys missing from older records take the defaults those records imply: no units or input
      kinds recorded, no value encoding, no window report; only ``normalisation`` is required;
    * ``window`` is prepare's window report, carried verbatim as JSON text for the record and
      read by key nowhere; two records are equal when their reports hold the same data, in
      whatever key order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoenc.sar.normalisation import Normalisation

__all__ = ["UNKNOWN", "Preprocessing"]

#: ``units`` / ``input_kinds`` entry of a scene that did not record them.
UNKNOWN = "unknown"


def _strings(d: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """``d[key]`` as a tuple of str (absent -> empty), or ValueError naming the key."""
    v = d.get(key, [])
    if not isinstance(v, list | tuple) or not all(isinstance(s, str) for s in v):
        raise ValueError(f"preprocessing record: {key!r} must be a list of strings, got {v!r}")
    return tuple(v)


@dataclass(frozen=True)
class Preprocessing:
    """The dB window, units and input kinds a model was trained on.

    Attributes:
        normalisation: the dataset's dB window and noise floor.
        units: the training scenes' units (sorted), e.g. ``("sigma0",)``.
        input_kinds: the training scenes' input kinds (sorted), e.g. ``("intensity",)``.
        value_encoding: how stored patch values map to units (informational).
        window: prepare's window report as JSON text (informational, opaque), or None.
    """

    normalisation: Normalisation
    units: tuple[str, ...] = ()
    input_kinds: tuple[str, ...] = ()
    value_encoding: str | None = None
    window: str | None = field(default=None, compare=False)
    # Equality and hash see the window's data, not its key order (exports sort keys).
    _window_key: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        key = None if self.window is None else json.dumps(json.loads(self.window), sort_keys=True)
        object.__setattr__(self, "_window_key", key)

    def to_dict(self) -> dict[str, Any]:
        """The record as checkpoints, exports and older autoenc versions hold it."""
        return {
            "normalisation": self.normalisation.to_dict(),
            "units": list(self.units),
            "input_kinds": list(self.input_kinds),
            "value_encoding": self.value_encoding,
            "window": None if self.window is None else json.loads(self.window),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Preprocessing:
        """Read a stored record; only ``normalisation`` is required.

        Raises:
            ValueError: not a mapping, or naming the missing or mistyped key.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"preprocessing record must be an object, got {type(d).__name__}")
        if "normalisation" not in d:
            raise ValueError("preprocessing record lacks key 'normalisation' (the dB window)")
        norm = d["normalisation"]
        if not isinstance(norm, Mapping):
            raise ValueError(
                f"preprocessing record: 'normalisation' must be an object, got {norm!r}"
            )
        try:
            normalisation = Normalisation.from_dict(dict(norm))
        except (TypeError, ValueError) as e:
            raise ValueError(f"preprocessing record: 'normalisation': {e}") from None
        encoding = d.get("value_encoding")
        if encoding is not None and not isinstance(encoding, str):
            raise ValueError(
                f"preprocessing record: 'value_encoding' must be a string, got {encoding!r}"
            )
        window = d.get("window")
        try:
            text = None if window is None else json.dumps(window)
        except (TypeError, ValueError) as e:
            raise ValueError(f"preprocessing record: 'window' is not JSON data: {e}") from None
        return cls(normalisation, _strings(d, "units"), _strings(d, "input_kinds"), encoding, text)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Preprocessing:
        """The record of a dataset manifest: its window, its scenes' units and input kinds.

        Raises:
            ValueError: the manifest lacks ``normalisation`` or holds a mistyped entry.
        """
        scenes = manifest.get("scenes", {}).values()
        record = {
            "units": sorted({str(s.get("units", UNKNOWN)) for s in scenes}),
            "input_kinds": sorted({str(s.get("input_kind", UNKNOWN)) for s in scenes}),
            "value_encoding": manifest.get("value_encoding"),
            "window": manifest.get("window"),
        }
        if "normalisation" in manifest:
            record["normalisation"] = manifest["normalisation"]
        return cls.from_dict(record)
