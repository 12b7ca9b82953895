"""MGMT-Net: output contract, gradients, ablation switches, missing sequences, argument checks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from gliomics.constants import MARKERS, NUM_CLASSES, SEQUENCES
from gliomics.models.nets.mgmtnet import MGMTNet

S = len(SEQUENCES)
ABLATIONS: list[dict[str, Any]] = [
    {},
    {"fusion": "concat"},
    {"encoder": "cnn"},
    {"pooling": "gap"},
    {"mask_gating": False},
    {"attention_gate": False, "deep_supervision": False},
    {"swin_depths": (1, 1, 1), "swin_heads": (1, 2, 2)},
]


def _loss(out: dict[str, Any]) -> torch.Tensor:
    total = out["seg"].mean() + sum(m.sum() for m in out["markers"].values())
    return total + sum(a.mean() for a in out["deep_supervision"])


@pytest.mark.parametrize("ablation", ABLATIONS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()) or "paper")
def test_output_contract_and_gradients(ablation: dict[str, Any], tiny_kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = MGMTNet(**{**tiny_kwargs, **ablation}).train()
    x = torch.randn(2, S, 32, 32, 32)
    out = model(x)
    assert set(out) == {"seg", "deep_supervision", "markers", "alpha", "pool_weights"}
    assert out["seg"].shape == (2, NUM_CLASSES, 32, 32, 32)
    assert list(out["markers"]) == list(MARKERS) and all(v.shape == (2,) for v in out["markers"].values())
    assert out["pool_weights"].shape == (2, 1, 4, 4, 4)
    torch.testing.assert_close(out["pool_weights"].flatten(1).sum(1), torch.ones(2))
    if ablation.get("fusion") == "concat":
        assert out["alpha"] is None
    else:
        assert out["alpha"].shape == (2, S, 32, 32, 32)
    sizes = [tuple(a.shape[2:]) for a in out["deep_supervision"]]
    assert sizes == ([] if ablation.get("deep_supervision") is False else [(16, 16, 16), (8, 8, 8)])

    _loss(out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"

    model.eval()
    with torch.no_grad():
        assert model(x)["deep_supervision"] == []


def test_markers_come_from_the_same_encoder_pass(tiny_kwargs: dict[str, Any], image16: torch.Tensor) -> None:
    model = MGMTNet(**tiny_kwargs).eval()
    with torch.no_grad():
        out = model(image16)
        encoded = model.encode(image16)
        seg, _ = model.decode(encoded)
        markers, weights = model.predict_markers(encoded["features"], seg)
    torch.testing.assert_close(seg, out["seg"])
    torch.testing.assert_close(weights, out["pool_weights"])
    for m in MARKERS:
        torch.testing.assert_close(markers[m], out["markers"][m])


@pytest.mark.parametrize("subset", [s for r in range(1, S + 1) for s in itertools.combinations(range(S), r)])
def test_any_non_empty_subset_of_sequences(subset: tuple[int, ...], tiny_kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = MGMTNet(**tiny_kwargs).eval()
    present = torch.zeros(1, S, dtype=torch.bool)
    present[:, list(subset)] = True
    x = torch.randn(1, S, 16, 16, 16)
    x[:, ~present[0]] = float("nan")
    with torch.no_grad():
        out = model(x, present)
    assert torch.isfinite(out["seg"]).all()
    assert all(torch.isfinite(v).all() for v in out["markers"].values())
    assert (out["alpha"][:, ~present[0]] == 0).all()
    torch.testing.assert_close(out["alpha"].sum(1), torch.ones(1, 16, 16, 16))


@pytest.mark.parametrize(
    "switch,prefix",
    [
        ({"fusion": "concat"}, "fusion."),
        ({"encoder": "cnn"}, "context."),
        ({"pooling": "gap"}, "pool."),
        ({"attention_gate": False}, "decoder."),
        ({"deep_supervision": False}, "decoder.ds_heads"),
    ],
)
def test_ablation_switches_change_the_graph(switch: dict[str, Any], prefix: str, tiny_kwargs: dict[str, Any]) -> None:
    base = {n for n, _ in MGMTNet(**tiny_kwargs).named_parameters()}
    ablated = {n for n, _ in MGMTNet(**tiny_kwargs, **switch).named_parameters()}
    assert base != ablated
    assert all(n.startswith(prefix) for n in base ^ ablated)


def test_mask_gating_makes_markers_depend_on_the_segmentation(
    tiny_kwargs: dict[str, Any], image16: torch.Tensor
) -> None:
    torch.manual_seed(0)
    gated = MGMTNet(**tiny_kwargs).eval()
    ungated = MGMTNet(**tiny_kwargs, mask_gating=False).eval()
    ungated.load_state_dict(gated.state_dict())
    with torch.no_grad():
        features = gated.encode(image16)["features"]
        background = torch.zeros(2, NUM_CLASSES, 16, 16, 16)
        background[:, 0] = 10.0
        tumour = torch.zeros_like(background)
        tumour[:, 1] = 10.0
        m_bg, _ = gated.predict_markers(features, background)
        m_tu, _ = gated.predict_markers(features, tumour)
        u_bg, _ = ungated.predict_markers(features, background)
        u_tu, _ = ungated.predict_markers(features, tumour)
    assert not torch.allclose(m_bg["idh"], m_tu["idh"])
    torch.testing.assert_close(u_bg["idh"], u_tu["idh"])
    with pytest.raises(ValueError, match="seg_logits"):
        gated.predict_markers(features)


def test_bad_inputs_raise_clear_errors(tiny_kwargs: dict[str, Any]) -> None:
    model = MGMTNet(**tiny_kwargs)
    with pytest.raises(ValueError, match=f"expected {S} input channels"):
        model(torch.randn(1, S - 1, 16, 16, 16))
    with pytest.raises(ValueError, match="multiple of 8"):
        model(torch.randn(1, S, 16, 20, 16))
    with pytest.raises(ValueError, match="at least 16"):
        model(torch.randn(1, S, 8, 16, 16))
    with pytest.raises(ValueError, match="5D input"):
        model(torch.randn(S, 16, 16, 16))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"feature_size": 6, "swin_heads": (4, 4)}, "not divisible by its num_heads"),
        ({"fusion": "sum"}, "fusion must be one of"),
        ({"encoder": "vit"}, "encoder must be one of"),
        ({"pooling": "max"}, "pooling must be one of"),
        ({"out_channels": 1}, "out_channels"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"dropout_prob": 1.0}, "dropout_prob"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], match: str, tiny_kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=match):
        MGMTNet(**{**tiny_kwargs, **kwargs})


def test_two_dimensional_model(tiny_kwargs: dict[str, Any]) -> None:
    model = MGMTNet(spatial_dims=2, **tiny_kwargs).train()
    present = torch.tensor([[True, False, True, True], [False, False, False, True]])
    out = model(torch.randn(2, S, 32, 32), present)
    assert out["seg"].shape == (2, NUM_CLASSES, 32, 32) and out["pool_weights"].shape == (2, 1, 4, 4)
    assert (out["alpha"][1, :3] == 0).all()
    _loss(out).backward()
    assert all(p.grad is not None for p in model.parameters())
