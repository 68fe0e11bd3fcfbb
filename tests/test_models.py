# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Shape, range, gradient, validation and registry tests for all autoencoder variants."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from autoenc.entropy import bits
from autoenc.layers.attention import CBAM
from autoenc.models import (
    MODELS,
    AttentionAutoencoder,
    AutoencoderBase,
    PlainAutoencoder,
    create_model,
    get_model_class,
    list_models,
    register_model,
)

SMALL: dict[str, Any] = {"latent_channels": 4, "base_channels": 8}
PLACEMENTS = ["bottleneck", "every_stage", "every_block"]


#: Variants with a learned latent of ``latent_channels`` (the wavelet codec has its own tests).
LATENT_VARIANTS = [n for n in list_models() if not get_model_class(n).variable_rate]


def small_model(name: str, **overrides: Any) -> AutoencoderBase:
    torch.manual_seed(0)
    model = create_model(name, **{**SMALL, **overrides})
    assert isinstance(model, AutoencoderBase)
    return model


def test_all_variants_registered() -> None:
    assert list_models() == sorted(
        [
            "PlainAutoencoder",
            "ResNetAutoencoder",
            "ResidualAutoencoder",
            "AttentionAutoencoder",
            "HyperpriorAutoencoder",
            "WaveletCodec",
        ]
    )


@pytest.mark.parametrize("name", LATENT_VARIANTS)
def test_shapes_and_range(name: str) -> None:
    model = small_model(name)
    x = torch.rand(2, 1, 64, 96)
    out = model(x)
    assert out["x_hat"].shape == x.shape
    assert out["y"].shape == (2, SMALL["latent_channels"], 64 // 16, 96 // 16)
    assert torch.isfinite(out["x_hat"]).all()
    assert out["x_hat"].min() >= 0.0 and out["x_hat"].max() <= 1.0
    model.eval()
    with torch.no_grad():
        assert model.decode(model.encode(x)).shape == x.shape


@pytest.mark.parametrize("name", LATENT_VARIANTS)
def test_backward_gives_finite_grads(name: str) -> None:
    model = small_model(name)
    out = model(torch.rand(2, 1, 32, 32))
    loss = nn.functional.mse_loss(out["x_hat"], torch.rand(2, 1, 32, 32))
    loss = loss + bits(out["likelihoods"]) / 2048 + model.aux_loss()  # rate + aux reach the rest
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize("name", LATENT_VARIANTS)
@pytest.mark.parametrize(("height", "width"), [(250, 256), (32, 40)])
def test_input_not_multiple_of_16(name: str, height: int, width: int) -> None:
    model = small_model(name)
    with pytest.raises(ValueError, match=f"{height}x{width}"):
        model(torch.rand(1, 1, height, width))


@pytest.mark.parametrize("name", LATENT_VARIANTS)
@pytest.mark.parametrize("shape", [(1, 2, 32, 32), (1, 32, 32)])
def test_bad_input_shape(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="B, 1, H, W"):
        small_model(name)(torch.rand(*shape))


@pytest.mark.parametrize("name", LATENT_VARIANTS)
@pytest.mark.parametrize("latent_channels", [0, -1])
def test_bad_latent_channels(name: str, latent_channels: int) -> None:
    with pytest.raises(ValueError, match=rf"latent_channels.*{latent_channels}"):
        create_model(name, latent_channels=latent_channels)


@pytest.mark.parametrize("name", LATENT_VARIANTS)
def test_config_round_trip(name: str) -> None:
    model = small_model(name)
    rebuilt = create_model(name, **model.config)
    assert model.config == rebuilt.config
    original = {k: v.shape for k, v in model.state_dict().items()}
    assert original == {k: v.shape for k, v in rebuilt.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())


def test_config_is_a_copy() -> None:
    model = small_model("PlainAutoencoder")
    model.config["latent_channels"] = 99
    assert model.config["latent_channels"] == SMALL["latent_channels"]


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="'Nope'") as info:
        create_model("Nope")
    for name in LATENT_VARIANTS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="valid variants"):
        get_model_class("Nope")


def test_duplicate_registration_raises() -> None:
    before = dict(MODELS)

    class PlainAutoencoder(nn.Module):  # same name as the real variant
        pass

    with pytest.raises(ValueError, match="PlainAutoencoder"):
        register_model(PlainAutoencoder)
    assert before == MODELS


def test_register_new_model() -> None:
    class _TmpModel(nn.Module):
        pass

    try:
        assert register_model(_TmpModel) is _TmpModel
        assert get_model_class("_TmpModel") is _TmpModel
    finally:
        MODELS.pop("_TmpModel", None)


@pytest.mark.parametrize(
    ("placement", "expected"), [("bottleneck", 2), ("every_stage", 8), ("every_block", 16)]
)
def test_attention_placements(placement: str, expected: int) -> None:
    model = small_model("AttentionAutoencoder", placement=placement, blocks_per_stage=2)
    assert sum(isinstance(m, CBAM) for m in model.modules()) == expected
    out = model(torch.rand(1, 1, 32, 32))
    assert out["x_hat"].shape == (1, 1, 32, 32)


def test_attention_every_block_scales_with_blocks() -> None:
    model = small_model("AttentionAutoencoder", placement="every_block", blocks_per_stage=1)
    assert sum(isinstance(m, CBAM) for m in model.modules()) == 8


def test_bad_placement_raises() -> None:
    with pytest.raises(ValueError, match="'nowhere'") as info:
        AttentionAutoencoder(**SMALL, placement="nowhere")  # type: ignore[arg-type]
    for placement in PLACEMENTS:
        assert placement in str(info.value)


def test_residual_has_no_attention() -> None:
    model = small_model("ResidualAutoencoder")
    assert not any(isinstance(m, CBAM) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("ResidualAutoencoder", {"blocks_per_stage": 0}), ("PlainAutoencoder", {"base_channels": -2})],
)
def test_other_bad_ints(name: str, kwargs: dict[str, int]) -> None:
    key, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=rf"{key}.*{value}"):
        create_model(name, **kwargs)


def test_plain_matches_predecessor_parameter_count() -> None:
    model = PlainAutoencoder(latent_channels=16, base_channels=64)
    assert sum(p.numel() for p in model.network_parameters()) == 2_257_809


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ResNetAutoencoder", 5_259_729),
        ("ResidualAutoencoder", 4_080_593),
        ("AttentionAutoencoder", 4_097_719),
    ],
)
def test_default_parameter_counts(name: str, expected: int) -> None:
    model = get_model_class(name)()
    assert sum(p.numel() for p in model.network_parameters()) == expected


def test_latent_is_unbounded() -> None:
    # The last encoder layer is a conv, not an activation, so y may be negative.
    for name in LATENT_VARIANTS:
        layers = list(small_model(name).g_a.children())
        assert isinstance(layers[-1], nn.Conv2d), name
