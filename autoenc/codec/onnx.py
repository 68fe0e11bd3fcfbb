# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""ONNX export of the wavelet codec, and the onnxruntime backend that decodes with it.

:func:`export_onnx` writes a folder that holds the whole codec without PyTorch weights:

* ``g_a.onnx`` and ``g_s.onnx``: the analysis and synthesis transforms (CDF 9/7 + packing),
  dynamic batch and size;
* one graph per context net: ``ll_rest.onnx``, ``anchor_<k>.onnx``, ``rest_<k>.onnx``
  (``k = 0`` the coarsest level; no ``rest`` for a one-stage level), each the integer net of
  :mod:`autoenc.layers.integer` with its integers baked in
  (:class:`~autoenc.layers.integer.FrozenIntegerNet`);
* ``codec.json`` (:data:`FORMAT`): the model spec, the preprocessing record, the PyTorch
  weights hash that ``.aec`` headers name, the output grid exponents of each net, the LL
  anchor parameters, the entropy tables (scale table and integer PMFs) and each graph's
  SHA-256.

:func:`load_onnx` rebuilds a codec whose transforms and context nets are onnxruntime sessions;
the stage loop, the coder and the radiometry stay autoenc's. Only codecs with **integer**
context nets export: their table indexes are exact integer comparisons, so a file coded by
PyTorch decodes through onnxruntime to the same symbols (tested). The float context of older
models would not be exactly reproducible by another runtime, and is refused. ``g_s`` is float
maths; onnxruntime's output matched PyTorch's bit for bit in the tests here, and the stated
tolerance is 1e-5 (in [0, 1] units, i.e. 3e-4 dB of a 30 dB window).

Invariants:
    * a folder loads only if ``codec.json`` has the right format and every graph its recorded
      SHA-256 (a damaged or swapped graph is named);
    * the loaded codec reports the PyTorch model's weights hash, so the decoder's header check
      works unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from autoenc.codec.model_io import LoadedCodec, ModelError
from autoenc.layers.integer import IntegerConvNet
from autoenc.models import build_model
from autoenc.models.wavelet import WaveletCodec
from autoenc.sar.preprocessing import Preprocessing

#: ``format`` of ``codec.json``.
FORMAT = "autoenc-onnx/1"
#: ONNX opset of the exported graphs.
OPSET = 17
#: Stated tolerance of the onnxruntime ``g_s`` against PyTorch's ([0, 1] units).
GS_TOLERANCE = 1e-5
_ENTROPY = ("scale_table", "_quantized_pmf", "_pmf_length", "_offset")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nets(model: WaveletCodec) -> dict[str, nn.Module]:
    """The context nets by export name."""
    ctx = model.context
    out: dict[str, nn.Module] = {"ll_rest": ctx.ll_rest}
    for k in range(ctx.levels):
        out[f"anchor_{k}"] = ctx.anchor[k]
    for k in range(ctx.two_stage):  # one-stage levels have no rest net
        out[f"rest_{k}"] = ctx.rest[k]
    return out


def _export_graph(module: nn.Module, example: Tensor, dst: Path, names: tuple[str, str]) -> None:
    """One graph, dynamic batch and spatial axes, written next to ``dst`` then renamed."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    axes = {names[0]: {0: "batch", 2: "height", 3: "width"}}
    axes[names[1]] = {0: "batch", 2: "out_height", 3: "out_width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and trace notes
        torch.onnx.export(
            module.eval(), (example,), str(tmp), dynamo=False, opset_version=OPSET,
            input_names=[names[0]], output_names=[names[1]], dynamic_axes=axes,
        )  # fmt: skip
    os.replace(tmp, dst)


def export_onnx(codec: LoadedCodec, out_dir: str | Path) -> Path:
    """Write ``codec`` as ONNX graphs plus ``codec.json`` into ``out_dir``; returns the JSON.

    Raises:
        ModelError: not a wavelet codec, or one whose context nets are float (not exactly
            reproducible by another runtime: train with ``integer: true``).
    """
    model = codec.model
    if not isinstance(model, WaveletCodec):
        raise ModelError(f"{codec.path}: only the wavelet codec exports to ONNX")
    if not model.context.integer:
        raise ModelError(
            f"{codec.path}: its context nets are float, which another runtime cannot reproduce "
            "bit for bit (files would not decode); export a model trained with integer: true"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cpu = model.to("cpu").eval()
    files: dict[str, str] = {}
    exponents: dict[str, list[int]] = {}
    with torch.no_grad():
        f = cpu.downsampling_factor
        _export_graph(cpu.g_a, torch.rand(1, 1, 2 * f, 2 * f), out / "g_a.onnx", ("x", "y"))
        y = torch.zeros(1, 4**cpu.levels, 2, 2)
        _export_graph(cpu.g_s, y, out / "g_s.onnx", ("y", "x"))
        for name, net in _nets(cpu).items():
            assert isinstance(net, IntegerConvNet)
            cin = net.layers()[0].in_channels
            dst = out / f"{name}.onnx"
            _export_graph(net.frozen(), torch.zeros(1, cin, 8, 8), dst, ("features", "log_scale"))
            exponents[name] = [int(e) for e in net.exponents().tolist()]
        for name in ("g_a", "g_s", *exponents):
            files[f"{name}.onnx"] = _sha256(out / f"{name}.onnx")
    gc = cpu.context.gaussian_conditional
    record = {
        "format": FORMAT,
        "opset": OPSET,
        "spec": codec.spec,
        "preprocessing": codec.preprocessing.to_dict(),
        "weights_sha256": codec.weights_sha256,
        "ll_anchor": [float(v) for v in cpu.context.ll_anchor.detach().tolist()],
        "exponents": exponents,
        "entropy": {k: getattr(gc, k).detach().cpu().tolist() for k in _ENTROPY},
        "files": files,
        "g_s_tolerance": GS_TOLERANCE,
    }
    dst = out / "codec.json"
    tmp = dst.with_name(".codec.json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, dst)
    return dst


class OrtNet(nn.Module):
    """An onnxruntime session in a module's place: tensor in, tensor out (CPU)."""

    def __init__(self, session: Any, exponents: Sequence[int] | None = None) -> None:
        super().__init__()
        self.session = session
        self.input = session.get_inputs()[0].name
        self._exponents = None if exponents is None else [int(e) for e in exponents]

    def exponents(self) -> Tensor:
        """Output grid exponents, as :meth:`IntegerConvNet.exponents` (from ``codec.json``)."""
        assert self._exponents is not None
        return torch.tensor(self._exponents)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        out = self.session.run(None, {self.input: np.ascontiguousarray(x.detach().float().cpu())})
        return torch.from_numpy(out[0]).to(x.device)


@dataclass(frozen=True)
class OnnxExport:
    """A checked ``codec.json`` and the folder it lies in."""

    folder: Path
    record: dict[str, Any]

    @classmethod
    def read(cls, folder: str | Path) -> OnnxExport:
        """Read and check ``folder/codec.json`` and every graph's SHA-256.

        Raises:
            ModelError: no export there, a wrong format, a missing or damaged graph.
        """
        folder = Path(folder)
        path = folder / "codec.json"
        if not path.is_file():
            raise ModelError(
                f"{folder} holds no ONNX export (no codec.json); see autoenc export --onnx"
            )
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{path}: unreadable ({e})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            got = record.get("format") if isinstance(record, dict) else None
            raise ModelError(f"{path} is not an autoenc ONNX export (format {got!r})")
        for name, digest in dict(record.get("files") or {}).items():
            graph = folder / name
            if not graph.is_file():
                raise ModelError(f"{graph} is missing from the ONNX export")
            if _sha256(graph) != digest:
                raise ModelError(f"{graph} does not match its SHA-256 in {path} (damaged?)")
        return cls(folder, record)


def load_onnx(folder: str | Path, threads: int | None = None) -> LoadedCodec:
    """A codec whose transforms and context nets run in onnxruntime (CPU).

    Raises:
        ModelError: see :meth:`OnnxExport.read`; onnxruntime not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            "the onnxruntime backend needs onnxruntime: pip install 'autoenc[onnx]'"
        ) from None
    export = OnnxExport.read(folder)
    rec = export.record
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    # no busy-waiting between runs: the stage loop's torch work needs those cores (spinning
    # made a decode 5x slower on 2 cores); shapes vary per tile, so no memory pattern either
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_mem_pattern = False

    def session(name: str) -> Any:
        return ort.InferenceSession(
            str(export.folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )

    try:
        model = build_model(rec["spec"])
        preprocessing = Preprocessing.from_dict(rec["preprocessing"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{export.folder}/codec.json: bad model record ({e})") from None
    if not isinstance(model, WaveletCodec) or not model.context.integer:
        raise ModelError(f"{export.folder}: not an integer-context wavelet codec")
    ctx = model.context
    model.fork_safe = False  # type: ignore[assignment]  # sessions hold ORT thread pools
    model.g_a = OrtNet(session("g_a"))
    model.g_s = OrtNet(session("g_s"))
    exps = rec["exponents"]
    ctx.ll_rest = OrtNet(session("ll_rest"), exps["ll_rest"])
    ctx.anchor = nn.ModuleList(OrtNet(session(f"anchor_{k}"), exps[f"anchor_{k}"])
                               for k in range(ctx.levels))  # fmt: skip
    ctx.rest = nn.ModuleList(OrtNet(session(f"rest_{k}"), exps[f"rest_{k}"])
                             for k in range(ctx.two_stage))  # fmt: skip
    with torch.no_grad():
        ctx.ll_anchor.copy_(torch.tensor(rec["ll_anchor"]))
        gc = ctx.gaussian_conditional
        for name in _ENTROPY:
            value = torch.tensor(rec["entropy"][name], dtype=getattr(gc, name).dtype)
            getattr(gc, name).resize_(value.shape).copy_(value)
    return LoadedCodec(model.eval(), dict(rec["spec"]), preprocessing,
                       str(rec["weights_sha256"]), export.folder)  # fmt: skip
