"""Forward passes over whole volumes: flip TTA as one batch equals the average of separate passes."""

from __future__ import annotations

import torch

from gliomics.inference.engine import forward_volume, forward_with_tta
from gliomics.models.registry import create_model


def _model():
    torch.manual_seed(0)
    model = create_model("mgmtnet_cpu", feature_size=4, embed_channels=4, swin_heads=(1, 2), marker_hidden=8)
    return model.eval()


def test_batched_flip_tta_is_the_average_of_separate_passes():
    model = _model()
    image = torch.randn(1, 4, 32, 32, 32)
    present = torch.tensor([[True, True, False, True]])
    kwargs = {"roi_size": (32, 32, 32), "whole_volume_factor": 1.5}
    batched = forward_with_tta(model, image, present, flip_axes=(0, 1), **kwargs)
    plain = forward_volume(model, image, present, **kwargs)
    flips = [forward_volume(model, torch.flip(image, (d,)), present, **kwargs) for d in (2, 3)]
    probs = (plain["probs"] + sum(torch.flip(f["probs"], (d,)) for f, d in zip(flips, (2, 3)))) / 3
    torch.testing.assert_close(batched["probs"], probs, rtol=1e-4, atol=1e-5)
    for m, logit in plain["markers"].items():
        expected = (logit + sum(f["markers"][m] for f in flips)) / 3
        torch.testing.assert_close(batched["markers"][m], expected, rtol=1e-4, atol=1e-5)
    assert batched["probs"].shape == plain["probs"].shape
    torch.testing.assert_close(batched["alpha"], plain["alpha"], rtol=1e-4, atol=1e-5)  # the identity's weights


def test_flip_tta_with_sliding_windows_runs_the_passes_one_by_one():
    model = _model()
    image = torch.randn(1, 4, 32, 32, 64)
    present = torch.ones(1, 4, dtype=torch.bool)
    kwargs = {"roi_size": (32, 32, 32), "whole_volume_factor": 1.0}
    out = forward_with_tta(model, image, present, **kwargs)
    assert out["probs"].shape == (1, 5, 32, 32, 64)
    torch.testing.assert_close(out["probs"].sum(1), torch.ones(1, 32, 32, 64))
