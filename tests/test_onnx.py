# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Integer context nets, ONNX export and the onnxruntime decoder (issue 14, items 2 and 3).

The integer nets must give the same bits on every path (thread counts, float64, their frozen
form, onnxruntime); a scene compressed by PyTorch must decode through onnxruntime to the
PyTorch decode's pixels (within the stated ``g_s`` tolerance; equal here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from make_codec_fixtures import make_codec_fixtures
from make_data import make_codec_dataset
from train_tiny import fit_tiny

from autoenc.cli import main
from autoenc.codec.onnx import GS_TOLERANCE
from autoenc.layers.integer import EXACT, IntegerConvNet, activation_grid
from autoenc.models import create_model

ort = pytest.importorskip("onnxruntime")
TILE = 64


def _random_net(cin: int, width: int, seed: int) -> IntegerConvNet:
    torch.manual_seed(seed)
    net = IntegerConvNet(cin, 3, width)
    for conv in net.convs:  # large weights and biases: the sums reach far up the exact range
        torch.nn.init.normal_(conv.weight, std=0.5)
        torch.nn.init.normal_(conv.bias, std=0.5)
    return net


def test_activation_grids_keep_every_sum_exact() -> None:
    for fan_in in (18, 45, 72, 144, 288):
        exp, amax = activation_grid(fan_in)
        assert fan_in * amax * 127 + 2**22 < EXACT
        assert fan_in * (2 * amax + 1) * 127 + 2**22 >= EXACT  # the finest grid that fits
        assert 2.0 <= amax * 2.0**-exp < 4.0
    with pytest.raises(ValueError, match="too large"):
        activation_grid(9 * 4096)


@pytest.mark.parametrize(("cin", "width"), [(8, 32), (5, 8), (2, 16)])
def test_integer_net_gives_the_same_bits_on_every_path(
    cin: int, width: int, tmp_path: Path
) -> None:
    net = _random_net(cin, width, seed=cin)
    x = torch.randn(2, cin, 37, 53) * 3  # beyond the input range too: clamped the same way
    before = torch.get_num_threads()
    try:
        with torch.no_grad():
            torch.set_num_threads(1)
            one = net(x)
            torch.set_num_threads(2)
            two = net(x)
            frozen = net.frozen()(x)
            ste = net.forward_ste(x)
            wide = net.double()(x.double())
    finally:
        torch.set_num_threads(before)
        net.float()
    e = net.exponents()
    acc = one * torch.ldexp(torch.ones(3), e).view(1, -1, 1, 1)
    assert bool((acc == acc.round()).all()) and float(acc.abs().max()) < EXACT
    assert float(acc.abs().max()) > 2**16  # large sums: a rounding would show
    for other in (two, frozen, ste, wide.float()):
        assert torch.equal(one, other)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net.frozen(), (x[:1],), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}})  # fmt: skip
    for threads in (1, 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        got = torch.from_numpy(sess.run(None, {"x": x.numpy()})[0])
        assert torch.equal(got, one), threads


def test_straight_through_gradients_reach_every_layer() -> None:
    net = _random_net(5, 8, seed=3)
    for conv in net.convs:
        torch.nn.init.normal_(conv.weight, std=0.1)
    x = torch.randn(1, 5, 16, 16)
    net(x).square().sum().backward()
    for conv in net.convs:
        assert conv.weight.grad is not None and float(conv.weight.grad.abs().sum()) > 0


@pytest.fixture(scope="module")
def tifs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_codec_fixtures(tmp_path_factory.mktemp("onnx_tifs"))


@pytest.fixture(scope="module")
def integer_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-level integer-context WaveletCodec, 30 training steps: the coarsest level in two
    stages, the others in one, the finest at its parent's resolution (the default's layout)."""
    root = make_codec_dataset(tmp_path_factory.mktemp("onnx_data") / "codec")
    torch.manual_seed(0)
    model = create_model("WaveletCodec", levels=3, width=8, widths=[8, 8, 4],
                         steps=[0.6, 0.25, 0.1, 0.04], integer=True, one_stage=2,
                         at_parent=1)  # fmt: skip
    return fit_tiny(model, root, tmp_path_factory.mktemp("onnx_ckpt") / "integer.ckpt", 30)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as f:
        return f.read(1)


def test_export_and_onnxruntime_decode_round_trip_a_scene(
    tifs: dict[str, Path], integer_ckpt: Path, tmp_path: Path
) -> None:
    onnx_dir, aec = tmp_path / "onnx", tmp_path / "s.aec"
    assert main(["export", str(integer_ckpt), "--onnx", str(onnx_dir)]) == 0
    record = json.loads((onnx_dir / "codec.json").read_text())
    assert record["format"] == "autoenc-onnx/1"
    assert sorted(record["files"]) == sorted(
        ["g_a.onnx", "g_s.onnx", "ll_rest.onnx"]
        + [f"anchor_{k}.onnx" for k in range(3)]
        + ["rest_0.onnx"]  # the one-stage levels have no rest net
    )
    src = tifs["sigma0"]
    for quality in ("0", "3"):
        assert main(["compress", str(src), "-o", str(aec), "--ckpt", str(integer_ckpt),
                     "--tile", str(TILE), "--quality", quality, "--overwrite",
                     "--quiet"]) == 0  # fmt: skip
        outs = {}
        for backend, model in (("torch", integer_ckpt), ("onnxruntime", onnx_dir)):
            out = tmp_path / f"{backend}.tif"
            assert main(["decompress", str(aec), "-o", str(out), "--ckpt", str(model),
                         "--backend", backend, "--overwrite", "--quiet"]) == 0  # fmt: skip
            outs[backend] = _read(out)
        a, b = outs["torch"], outs["onnxruntime"]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(a) & (a > 0)
        assert ok.mean() > 0.9
        # g_s tolerance in [0, 1] units of the 30 dB window, in dB
        err = np.abs(10 * np.log10(a[ok]) - 10 * np.log10(b[ok]))
        assert float(err.max()) <= GS_TOLERANCE * 30.0, float(err.max())


def test_export_refuses_float_contexts_and_decode_names_a_damaged_graph(
    integer_ckpt: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autoenc.pretrained import FOLDER

    float_model = FOLDER / "wavelet-grdh.safetensors"
    assert main(["export", str(float_model), "--onnx", str(tmp_path / "f")]) == 2
    assert "its context nets are float" in caplog.text
    onnx_dir = tmp_path / "onnx"
    assert main(["export", str(integer_ckpt), "--onnx", str(onnx_dir)]) == 0
    assert main(["export", str(integer_ckpt), "--onnx", str(onnx_dir)]) == 2  # no overwrite
    assert "already holds an ONNX export" in caplog.text
    graph = onnx_dir / "rest_0.onnx"
    graph.write_bytes(graph.read_bytes()[:-8] + b"\0" * 8)
    from autoenc.codec.model_io import ModelError
    from autoenc.codec.onnx import load_onnx

    with pytest.raises(ModelError, match="rest_0.onnx"):
        load_onnx(onnx_dir)
    (onnx_dir / "codec.json").unlink()
    with pytest.raises(ModelError, match="no codec.json"):
        load_onnx(onnx_dir)


def test_onnxruntime_backend_refuses_a_file_of_another_model(
    tifs: dict[str, Path], integer_ckpt: Path, tmp_path: Path
) -> None:
    onnx_dir, aec = tmp_path / "onnx", tmp_path / "s.aec"
    assert main(["export", str(integer_ckpt), "--onnx", str(onnx_dir)]) == 0
    # written by the shipped default, whose weights hash the export does not carry
    assert main(["compress", str(tifs["small"]), "-o", str(aec), "--quiet"]) == 0
    out = tmp_path / "x.tif"
    code = main(["decompress", str(aec), "-o", str(out), "--ckpt", str(onnx_dir),
                 "--backend", "onnxruntime", "--quiet"])  # fmt: skip
    assert code == 3 and not out.exists()


def test_decompress_backend_needs_an_export_folder(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["decompress", "x.aec", "-o", "y.tif", "--backend", "onnxruntime"])
    assert "--ckpt DIR" in capsys.readouterr().err
