"""Every registered model builds, runs forward/backward on a tiny input and keeps the output contract."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gliomics.constants import MARKERS, NUM_CLASSES, SEQUENCES
from gliomics.models.nets.mgmtnet import MGMTNet
from gliomics.models.registry import (
    create_model,
    default_patch_size,
    get_model_entry,
    list_models,
    model_defaults,
    register_model,
)

#: Tiny overrides per preset so that one forward/backward takes well under a second (cf. timm's test_models.py).
TINY: dict[str, dict[str, Any]] = {
    "mgmtnet": dict(feature_size=6, embed_channels=4, swin_heads=(1, 2, 2), window_size=2, marker_hidden=8),
    "mgmtnet_cpu": dict(feature_size=4, embed_channels=4, swin_heads=(1, 1), window_size=2, marker_hidden=8),
    "mgmtnet_cnn": dict(feature_size=4, embed_channels=4, marker_hidden=8),
    "swinunetr": dict(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=2),
    "segresnet": dict(init_filters=8),
    "dynunet": dict(filters=(4, 8, 16, 16)),
    "densenet3d": dict(init_features=4, growth_rate=4, block_config=(1, 1, 1, 1)),
}
#: SwinUNETR halves the size five times and MONAI's instance norm refuses a 1-voxel bottleneck in training.
INPUT_SIZE: dict[str, int] = {"swinunetr": 64}
EXPECTED = {"mgmtnet", "mgmtnet_cpu", "mgmtnet_cnn", "swinunetr", "segresnet", "dynunet", "densenet3d"}


def test_expected_presets_are_registered() -> None:
    assert EXPECTED <= set(list_models())
    assert list_models("mgmtnet*") == ["mgmtnet", "mgmtnet_cnn", "mgmtnet_cpu"]
    assert default_patch_size("mgmtnet") == (128, 128, 128)
    assert default_patch_size("mgmtnet_cpu") == (48, 48, 48)


def test_the_paper_preset_is_the_papers_model_and_the_cpu_preset_departs_as_documented() -> None:
    from gliomics.models.registry import model_defaults

    paper, cpu = create_model("mgmtnet", **TINY["mgmtnet"]), model_defaults("mgmtnet_cpu")
    assert paper.fusion.embed.sequence_affine is False  # the paper's fully shared embedding
    assert paper.descriptors is None and paper.fusion.mix is None  # no descriptors, no residual concatenation
    # the README's table "How gliomics' MGMT-Net differs from the paper" lists each of these
    assert cpu["sequence_affine"] and cpu["descriptors"] and cpu["fusion_residual"]


@pytest.mark.parametrize("name", list_models())
def test_every_model_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, **TINY.get(name, {})).train()
    size = INPUT_SIZE.get(name, 32)
    # Batch 2: DenseNet's BatchNorm sees a single voxel per channel at the end of a 32^3 input.
    x = torch.randn(2, len(SEQUENCES), size, size, size)
    out = model(x)
    assert set(out) == {"seg", "deep_supervision", "markers", "alpha", "pool_weights"}
    loss = torch.zeros(())
    if out["seg"] is not None:
        assert out["seg"].shape == (2, NUM_CLASSES, size, size, size)
        loss = loss + out["seg"].mean() + sum(a.mean() for a in out["deep_supervision"])
    if out["markers"] is not None:
        assert set(out["markers"]) == set(MARKERS) and all(v.shape == (2,) for v in out["markers"].values())
        loss = loss + sum(v.sum() for v in out["markers"].values())
    assert out["seg"] is not None or out["markers"] is not None
    loss.backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}: {pname} received no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


def test_baselines_zero_missing_sequences() -> None:
    model = create_model("segresnet", **TINY["segresnet"]).eval()
    x = torch.randn(1, len(SEQUENCES), 32, 32, 32)
    present = torch.ones(1, len(SEQUENCES), dtype=torch.bool)
    present[0, 1] = False
    x2 = x.clone()
    x2[:, 1] = 123.0
    with torch.no_grad():
        torch.testing.assert_close(model(x, present)["seg"], model(x2, present)["seg"])


def test_unknown_name_and_key_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'unet'.*mgmtnet_cpu"):
        create_model("unet")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['featur_size'\].*feature_size"):
        create_model("mgmtnet_cpu", featur_size=8)


def test_model_defaults_merge_preset_and_class_defaults() -> None:
    defaults = model_defaults("mgmtnet_cpu")
    assert defaults["feature_size"] == 12 and defaults["window_size"] == 4 and defaults["descriptors"] is True
    assert defaults["fusion"] == "cmaf" and defaults["fusion_residual"] is True and defaults["pooling"] == "attention"
    defaults["feature_size"] = 999  # a copy: the registry is not changed
    assert model_defaults("mgmtnet_cpu")["feature_size"] == 12
    assert isinstance(create_model("mgmtnet_cpu", **TINY["mgmtnet_cpu"]), MGMTNet)


def test_register_model_refuses_duplicates_and_bad_hparams() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("mgmtnet", MGMTNet, patch_size=64)(lambda: {})
    with pytest.raises(ValueError, match="not parameters of MGMTNet"):
        register_model("broken_preset", MGMTNet, patch_size=64)(lambda: {"depth": 3})
    assert "broken_preset" not in list_models()
    assert get_model_entry("mgmtnet").description


def test_input_size_checks_of_baselines() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        create_model("dynunet", **TINY["dynunet"])(torch.randn(1, len(SEQUENCES), 20, 32, 32))
    with pytest.raises(ValueError, match="at least 64"):
        create_model("swinunetr", **TINY["swinunetr"])(torch.randn(1, len(SEQUENCES), 32, 32, 32))
    with pytest.raises(ValueError, match="input channels"):
        create_model("densenet3d", **TINY["densenet3d"])(torch.randn(1, 2, 32, 32, 32))
