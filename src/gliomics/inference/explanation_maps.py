"""Interpretability maps of one case: CMAF weights, the marker attention-pooling weights and Grad-CAM per marker.

The maps come from one forward pass of the trained network over a window of the preprocessed volume centred on the
predicted tumour (the whole volume when it is small enough for one pass, as in the predictor), and Grad-CAM from one
backward pass per marker (Captum's :class:`~captum.attr.LayerGradCam`, Selvaraju et al., ICCV 2017,
<https://arxiv.org/abs/1610.02391>) with the marker logit as the target and the encoder output ``F_ENC`` as the layer.
Everything is returned in the preprocessed grid (RAS, resampled, cropped to the brain), where the image, the predicted
segmentation and the maps share voxels; the maps are NaN outside the window.

The maps come through the :class:`~gliomics.inference.predictor.Predictor` that predicts the case, so an ensemble's
maps are its members' mean. Given the :class:`~gliomics.inference.prediction.Prediction` in memory (``gliomics predict
--report``), the case is not read or preprocessed again, and where the prediction ran over the whole volume its CMAF
and pooling weights are the maps: the only passes left are Grad-CAM's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from gliomics.constants import MARKERS
from gliomics.io import Case, voxel_spacing

logger = logging.getLogger(__name__)

#: Layers tried, in order, as the Grad-CAM target: MGMT-Net's fused encoder output F_ENC.
GRADCAM_LAYERS: tuple[str, ...] = ("encoder_fusion",)


@dataclass
class CaseMaps:
    """A case in the network's grid with its interpretability maps.

    Attributes:
        image: ``C × X × Y × Z`` normalised intensities (RAS axes), missing sequences zero.
        present: Which sequences were used, in :data:`~gliomics.constants.SEQUENCES` order.
        spacing: Voxel size in mm.
        seg: Predicted labels in the same grid, or None for a marker-only model.
        window: The voxels the maps were computed on.
        alpha: CMAF weights ``C × X × Y × Z`` (sum to 1 over the present sequences), or None.
        pool_weights: Attention-pooling weights upsampled to the grid, divided by their maximum, or None.
        gradcam: Marker → Grad-CAM in [0, 1] (ReLU, divided by the maximum).
        window_markers: Marker probabilities of the pass over the window (empty when the maps are the prediction's).
        gradcam_layer: Name of the Grad-CAM target layer, or None when the model has none of :data:`GRADCAM_LAYERS`.
        seconds: Time taken.
        from_prediction: The CMAF and pooling maps are the prediction's own, from its pass over the whole volume.
    """

    image: np.ndarray
    present: tuple[bool, ...]
    spacing: tuple[float, float, float]
    seg: np.ndarray | None
    window: tuple[slice, ...]
    alpha: np.ndarray | None = None
    pool_weights: np.ndarray | None = None
    gradcam: dict[str, np.ndarray] = field(default_factory=dict)
    window_markers: dict[str, float] = field(default_factory=dict)
    gradcam_layer: str | None = None
    seconds: float = 0.0
    from_prediction: bool = False


def analysis_window(mask: np.ndarray, roi_size: Sequence[int], divisor: int,
                    whole_volume_factor: float) -> tuple[slice, ...]:
    """The voxels to explain: the whole volume if it is small, else ``roi_size`` centred on the mask's centroid.

    Args:
        mask: Tumour mask in the network grid (empty: the volume's centre).
        roi_size: The network's window (the training patch size).
        divisor: Window sizes are kept multiples of this.
        whole_volume_factor: Volumes of at most this many windows' voxels are taken whole (the run's
            ``inference.whole_volume_factor``, as in prediction).
    """
    spatial = mask.shape
    if math.prod(spatial) <= whole_volume_factor * math.prod(roi_size):
        return tuple(slice(0, s) for s in spatial)
    centre = (np.argwhere(mask).mean(0) if mask.any() else (np.array(spatial) - 1) / 2.0).round().astype(int)
    out = []
    for c, r, s in zip(centre, roi_size, spatial):
        size = min(r, s)
        size = max(size - size % divisor, min(divisor, s))
        start = int(min(max(c - size // 2, 0), s - size))
        out.append(slice(start, start + size))
    return tuple(out)


def find_gradcam_layer(model: nn.Module, names: Sequence[str] = GRADCAM_LAYERS) -> tuple[str, nn.Module] | None:
    """The first of ``names`` that is a submodule of ``model``, as ``(name, module)``; None if there is none."""
    for name in names:
        try:
            return name, model.get_submodule(name)
        except AttributeError:
            continue
    return None


def grad_cam(model: nn.Module, image: torch.Tensor, present: torch.Tensor | None, marker: str,
             layer: nn.Module) -> torch.Tensor:
    """Grad-CAM of one marker logit at ``layer``, upsampled to the input and scaled to [0, 1] per case.

    Args:
        model: A gliomics network in eval mode (its output dict has ``markers``).
        image: ``B × C × spatial`` input.
        present: ``B × C`` sequence flags, or None for all.
        marker: The marker whose logit is the target.
        layer: The target layer (e.g. ``model.encoder_fusion``, whose output is F_ENC).

    Returns:
        ``B × 1 × spatial`` float tensor, finite, in [0, 1] (all zeros where no voxel raises the logit).
    """
    from captum.attr import LayerAttribution, LayerGradCam

    def marker_logit(x: torch.Tensor, flags: torch.Tensor | None) -> torch.Tensor:
        return model(x, flags)["markers"][marker].reshape(x.shape[0])

    with torch.enable_grad():
        cam = LayerGradCam(marker_logit, layer).attribute(image, additional_forward_args=(present,),
                                                          relu_attributions=True)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[image.ndim - 2]
    cam = LayerAttribution.interpolate(cam.detach().float(), tuple(image.shape[2:]), interpolate_mode=mode)
    cam = torch.nan_to_num(cam.clamp(min=0))
    peak = cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, *([1] * (cam.ndim - 1)))
    return cam / peak


def _pool_map(pool: torch.Tensor, spatial: tuple[int, ...], window: tuple[slice, ...]) -> np.ndarray:
    """Pooling weights ``1 × 1 × encoder grid`` of a pass over ``window``, upsampled to it, divided by their maximum
    and placed in the volume."""
    win_shape = tuple(s.stop - s.start for s in window)
    up = torch.nn.functional.interpolate(pool.float().cpu(), size=win_shape, mode="trilinear")[0, 0]
    up = up / up.max().clamp(min=1e-12)
    return _embed(up.numpy(), spatial, window)


def _embed(values: np.ndarray, shape: tuple[int, ...], window: tuple[slice, ...]) -> np.ndarray:
    """``values`` (``… × window``) placed into a NaN volume of spatial ``shape``."""
    out = np.full((*values.shape[:-len(shape)], *shape), np.nan, dtype=np.float32)
    out[(..., *window)] = values
    return out


def compute_case_maps(predictor, case: Case, prediction=None, *,
                      layer_names: Sequence[str] = GRADCAM_LAYERS) -> CaseMaps:
    """The maps of ``case`` at its tumour-centred window, from every member of ``predictor`` (one network, or an
    ensemble's: their maps averaged).

    Args:
        predictor: A loaded :class:`~gliomics.inference.predictor.Predictor`: its preprocessing, members, marker
            readouts and options are the prediction's.
        case: The input case.
        prediction: The case's :class:`~gliomics.inference.prediction.Prediction`, in memory; None predicts it
            here. Its preprocessed input and network-grid labels are used and, where the window is the whole
            volume, its CMAF and pooling weights (already the members' mean).
        layer_names: Grad-CAM target layers to look for.
    """
    start = time.perf_counter()
    if prediction is None:
        prediction = predictor.predict(case)
    image, present = prediction.image, prediction.present.bool()
    seg = prediction.labels.numpy().astype(np.uint8) if prediction.labels is not None else None
    spatial = tuple(int(s) for s in image.shape[1:])
    mask = seg > 0 if seg is not None else np.zeros(spatial, dtype=bool)
    config = predictor.config
    window = analysis_window(mask, config.train.patch_size, int(getattr(predictor.model, "size_divisor", 16)),
                             config.inference.whole_volume_factor)
    spacing = voxel_spacing(np.asarray(image.affine, dtype=np.float64))
    x = image.as_tensor()[(None, slice(None), *window)].float().to(predictor.device)
    flags = present[None].to(predictor.device)
    maps = CaseMaps(image=np.asarray(image.as_tensor(), dtype=np.float32), present=tuple(present.tolist()),
                    spacing=spacing, seg=seg, window=window)
    whole = all(s.start == 0 and s.stop == n for s, n in zip(window, spatial))
    if whole and (prediction.alpha is not None or prediction.pool_weights is not None):
        maps.from_prediction = True
        if prediction.alpha is not None:
            maps.alpha = prediction.alpha.numpy().astype(np.float32)
        if prediction.pool_weights is not None:
            maps.pool_weights = _pool_map(prediction.pool_weights[None], spatial, window)
        explained = [m for m in MARKERS if m in prediction.markers]
    else:
        # the window's pass through the members, with the readout where the prediction used it, as prediction does
        out = predictor.network_output(x, flags, float(np.prod(spacing)), predictor.options.updated({"tta": False}))
        maps.window_markers = out.marker_probabilities
        if out.alpha is not None:
            maps.alpha = _embed(out.alpha[0].float().cpu().numpy(), spatial, window)
        if out.pool_weights is not None:
            maps.pool_weights = _pool_map(out.pool_weights.float(), spatial, window)
        explained = [m for m in MARKERS if m in (out.markers or {})]
    _ensemble_gradcam(maps, predictor.modules, x, flags, explained, layer_names)
    maps.seconds = time.perf_counter() - start
    return maps


def _ensemble_gradcam(maps: CaseMaps, modules: Sequence[nn.Module], x: torch.Tensor, flags: torch.Tensor,
                      explained: Sequence[str], layer_names: Sequence[str]) -> None:
    """Grad-CAM of each explained marker in ``maps``: the mean over ``modules`` of each one's map, scaled to
    [0, 1] again."""
    spatial = maps.image.shape[1:]
    for module in modules:
        found = find_gradcam_layer(module, layer_names)
        if found is None:
            logger.info("%s has none of the Grad-CAM layers %s", type(module).__name__, list(layer_names))
            continue
        maps.gradcam_layer, layer = found
        for m in explained:
            cam = grad_cam(module, x, flags, m, layer)[0, 0].cpu().numpy()
            maps.gradcam[m] = maps.gradcam.get(m, 0) + cam / len(modules)
    for m, cam in maps.gradcam.items():
        maps.gradcam[m] = _embed(cam / max(float(cam.max()), 1e-12), spatial, maps.window)


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every parameter re-drawn from its layer's initialisation (``reset_parameters``, else a
    normal distribution of the parameter's mean and spread) under ``seed``: the network of the model-parameter
    randomisation test (Adebayo et al., NeurIPS 2018, <https://arxiv.org/abs/1810.03292>)."""
    import copy

    clone = copy.deepcopy(model)
    trained = {name: p.detach().clone() for name, p in clone.named_parameters()}
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for module in clone.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
        # parameters held directly by a module without reset_parameters (an embedding, a bias table): re-drawn
        # from a normal distribution of their trained mean and spread
        with torch.no_grad():
            for name, p in clone.named_parameters():
                if p.numel() > 1 and torch.equal(p, trained[name]) and float(p.std()) > 0:
                    p.normal_(float(p.mean()), float(p.std()))
    finally:
        torch.random.set_rng_state(generator_state)
    return clone.eval()


def randomisation_check(model: nn.Module, image: torch.Tensor, present: torch.Tensor | None, *,
                        map_fn=None, markers: Sequence[str] = MARKERS, seed: int = 0) -> dict[str, float]:
    """Spearman rank correlation, per marker, between a map of the trained ``model`` and the same map of its
    :func:`randomised_copy`, over the voxels of ``image``. A map that explains the model changes when the weights do,
    so its correlation is well below 1; a map that ignores the weights (an edge detector, the image itself) stays
    near 1 and fails the check.

    Args:
        map_fn: ``(model, image, present, marker) -> B × 1 × spatial`` map; Grad-CAM at the model's
            :func:`find_gradcam_layer` by default.
    """
    from scipy.stats import spearmanr

    if map_fn is None:
        def map_fn(net, x, flags, marker):
            found = find_gradcam_layer(net)
            if found is None:
                raise ValueError("the model has no Grad-CAM layer")
            return grad_cam(net, x, flags, marker, found[1])

    random = randomised_copy(model, seed)
    out = {}
    for marker in markers:
        a = map_fn(model, image, present, marker).detach().float().flatten().numpy()
        b = map_fn(random, image, present, marker).detach().float().flatten().numpy()
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            out[marker] = 0.0 if np.ptp(a) != np.ptp(b) else 1.0
            continue
        out[marker] = float(spearmanr(a, b).statistic)
    return out
