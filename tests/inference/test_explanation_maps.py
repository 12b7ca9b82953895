"""Explanation maps: Grad-CAM's shape and range, the analysis window, and the model-parameter randomisation check
(Adebayo et al. 2018) on a trained model, which a map that ignores the weights fails."""

from __future__ import annotations

import numpy as np
import torch

from gliomics.constants import MARKERS, SEQUENCES
from gliomics.inference.explanation_maps import (
    analysis_window,
    find_gradcam_layer,
    grad_cam,
    randomisation_check,
    randomised_copy,
)
from gliomics.inference.predictor import Predictor
from gliomics.io import discover_cases
from gliomics.models.registry import create_model


def test_gradcam_has_the_input_shape_and_is_finite():
    torch.manual_seed(0)
    model = create_model("mgmtnet", feature_size=4, embed_channels=4, swin_depths=(1, 1), swin_heads=(1, 2),
                         window_size=2, marker_hidden=8).eval()
    x = torch.randn(1, len(SEQUENCES), 32, 32, 24)
    present = torch.tensor([[True, True, False, True]])
    name, layer = find_gradcam_layer(model)
    assert name == "encoder_fusion"
    for m in MARKERS:
        cam = grad_cam(model, x, present, m, layer)
        assert cam.shape == (1, 1, 32, 32, 24)
        assert torch.isfinite(cam).all()
        assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0 + 1e-6


def test_analysis_window_centres_on_the_tumour():
    mask = np.zeros((96, 96, 64), dtype=bool)
    mask[70:81, 10:20, 30:34] = True  # centroid (75, 14.5, 31.5)
    window = analysis_window(mask, (32, 32, 32), 8, 1.5)
    assert [s.stop - s.start for s in window] == [32, 32, 32]
    assert window[0] == slice(59, 91) and window[1] == slice(0, 32)
    assert analysis_window(np.zeros((32, 32, 16), dtype=bool), (32, 32, 32), 8, 1.5) == (slice(0, 32), slice(0, 32),
                                                                                     slice(0, 16))


def _trained_input(tiny_phantom, tiny_run):
    predictor = Predictor("cpu").load(tiny_run)
    data = predictor.transform(predictor.options)({"case": discover_cases(tiny_phantom)[0]})
    return predictor.model, data["image"].as_tensor()[None].float(), data["present"][None]


def test_randomised_copy_changes_every_layer_and_leaves_the_model_alone(tiny_run):
    model = Predictor("cpu").load(tiny_run).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random = randomised_copy(model, seed=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    weights = [k for k, v in random.state_dict().items() if v.is_floating_point() and v.ndim > 1]
    assert weights and all(not torch.equal(random.state_dict()[k], before[k]) for k in weights)


def test_gradcam_of_a_trained_model_passes_the_randomisation_check_and_an_edge_map_fails(tiny_phantom, tiny_run):
    model, x, present = _trained_input(tiny_phantom, tiny_run)
    gradcam = randomisation_check(model, x, present, markers=("idh",))
    assert gradcam["idh"] < 0.9

    def intensity_map(net, image, flags, marker):  # ignores the weights
        return image[:, 3:4]

    assert randomisation_check(model, x, present, map_fn=intensity_map, markers=("idh",))["idh"] > 0.99
