"""Forward passes over whole volumes: one pass when the volume fits, Gaussian sliding windows otherwise.

Markers and CMAF maps come from the same passes as the segmentation; when sliding windows are needed, the markers
come from one extra window centred on the segmented tumour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from monai.inferers import sliding_window_inference
from torch import nn

from gliomics.constants import MARKERS
from gliomics.inference.postprocess import class_argmax


def pad_multiple(model: nn.Module) -> int:
    """Volumes are padded to a multiple of this before :func:`forward_volume`: twice the model's size divisor, so that
    whole volumes and windows alike are sizes the model takes."""
    return int(getattr(model, "size_divisor", 16)) * 2


def _fits(spatial: Sequence[int], roi_size: Sequence[int], factor: float) -> bool:
    return math.prod(spatial) <= factor * math.prod(roi_size)


def _tumour_window(prob_bg: torch.Tensor, roi_size: Sequence[int], divisor: int) -> tuple[slice, ...]:
    """A window of ``roi_size`` (clipped to the volume) centred on the tumour's centre of mass."""
    spatial = prob_bg.shape
    weight = (1.0 - prob_bg).clamp(min=0)
    if float(weight.sum()) < 1e-3:
        centre = [s // 2 for s in spatial]
    else:
        grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float32, device=weight.device) for s in spatial],
                               indexing="ij")
        centre = [int(round(float((g * weight).sum() / weight.sum()))) for g in grids]
    out = []
    for c, r, s in zip(centre, roi_size, spatial):
        size = min(r, s - s % divisor if s >= divisor else s)
        start = int(min(max(c - size // 2, 0), s - size))
        out.append(slice(start, start + size))
    return tuple(out)


@torch.inference_mode()
def forward_volume(model: nn.Module, image: torch.Tensor, present: torch.Tensor, *, roi_size: Sequence[int],
                   overlap: float = 0.25, whole_volume_factor: float = 1.5, sw_batch_size: int = 1,
                   divisor: int = 16) -> dict:
    """Segmentation probabilities, marker logits and CMAF weights for one preprocessed volume.

    Args:
        model: A registered model in eval mode returning the gliomics output dict.
        image: ``1 × C × spatial`` normalised image, spatial sizes divisible by the model's divisor.
        present: ``1 × C`` bool flags of the sequences present.
        roi_size: Window size for sliding-window inference.
        overlap: Window overlap.
        whole_volume_factor: Volumes of at most this many windows' voxels run in a single pass.
        sw_batch_size: Windows per forward pass.
        divisor: Window sizes are kept multiples of this.

    Returns:
        ``probs`` (1 × K × spatial softmax or None), ``markers`` (dict of 1-element logits or None),
        ``alpha`` (1 × C × spatial or None) and ``pool_weights``.
    """
    spatial = image.shape[2:]
    if _fits(spatial, roi_size, whole_volume_factor):
        out = model(image, present)
        probs = torch.softmax(out["seg"].float(), 1) if out.get("seg") is not None else None
        return {"probs": probs, "markers": _fp32(out.get("markers")), "alpha": _fp32(out.get("alpha")),
                "pool_weights": _fp32(out.get("pool_weights"))}

    def seg_predictor(window: torch.Tensor) -> dict[str, torch.Tensor]:
        res = model(window, present.expand(window.shape[0], -1))
        # fp32 windows whatever the autocast precision: the blending buffers take the dtype of the first window
        d = {"seg": res["seg"].float()}
        if res.get("alpha") is not None:
            d["alpha"] = res["alpha"].float()
        return d

    roi = [min(r, s) for r, s in zip(roi_size, spatial)]
    sw = sliding_window_inference(image, roi, sw_batch_size, seg_predictor, overlap=overlap, mode="gaussian")
    probs = torch.softmax(sw["seg"], 1)
    window = _tumour_window(probs[0, 0], roi_size, divisor)
    res = model(image[(slice(None), slice(None), *window)], present)
    return {"probs": probs, "markers": _fp32(res.get("markers")), "alpha": sw.get("alpha"),
            "pool_weights": _fp32(res.get("pool_weights"))}


def _fp32(value):
    """``value`` (a tensor, a dict of tensors or None) in float32: outputs of a bf16 autocast pass leave in fp32."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: v.float() for k, v in value.items()}
    return value.float()


@torch.inference_mode()
def forward_with_tta(model: nn.Module, image: torch.Tensor, present: torch.Tensor, *, flip_axes: Sequence[int] = (0,),
                     **kwargs) -> dict:
    """Average the softmax (and marker logits) over the identity and a flip along each of ``flip_axes``.

    CMAF weights and pooling weights are those of the identity. A volume that fits one pass runs with its flips as
    one batch: every sample is normalised on its own (instance norm; batch norm in eval mode), so this is the average
    of separate passes, and on CPU a batch of several runs the convolutions faster than single samples do.

    ``passes`` holds what each pass said on its own (:func:`single_pass`), for the uncertainty of the prediction.
    """
    dims = [2 + axis for axis in flip_axes]
    n = 1 + len(dims)
    if _fits(image.shape[2:], kwargs["roi_size"], kwargs.get("whole_volume_factor", 1.5)):
        batch = torch.cat([image, *(torch.flip(image, (d,)) for d in dims)])
        res = forward_volume(model, batch, present.expand(n, -1), **kwargs)
        out = {"alpha": _first(res["alpha"]), "pool_weights": _first(res["pool_weights"]), "probs": None,
               "markers": None}
        singles = []
        for i, d in enumerate([None, *dims]):
            probs = None if res["probs"] is None else res["probs"][i : i + 1]
            probs = probs if d is None or probs is None else torch.flip(probs, (d,))
            markers = None if res["markers"] is None else {m: v[i : i + 1] for m, v in res["markers"].items()}
            singles.append(single_pass(probs, markers))
        if res["probs"] is not None:
            probs = res["probs"][:1].clone()
            for i, d in enumerate(dims, start=1):
                probs += torch.flip(res["probs"][i : i + 1], (d,))
            out["probs"] = probs / n
        if res["markers"] is not None:
            out["markers"] = {m: v.mean(0, keepdim=True) for m, v in res["markers"].items()}
        out["passes"] = join_passes(singles)
        return out
    base = forward_volume(model, image, present, **kwargs)
    singles = [single_pass(base["probs"], base["markers"])]
    for d in dims:
        res = forward_volume(model, torch.flip(image, (d,)), present, **kwargs)
        flipped = None if res["probs"] is None else torch.flip(res["probs"], (d,))
        singles.append(single_pass(flipped, res["markers"]))
        if base["probs"] is not None:
            base["probs"] = base["probs"] + flipped
        if base["markers"] is not None:
            base["markers"] = {m: base["markers"][m] + res["markers"][m] for m in base["markers"]}
    if base["probs"] is not None:
        base["probs"] = base["probs"] / n
    if base["markers"] is not None:
        base["markers"] = {m: v / n for m, v in base["markers"].items()}
    base["passes"] = join_passes(singles)
    return base


def average_outputs(outs: list[dict]) -> dict:
    """The outputs of several networks on one volume, averaged: the mean softmax, the mean marker probability
    (returned as its logit, as a single network's marker output is), the mean CMAF weights; the pooling weights are
    the first network's."""
    probs = [o["probs"] for o in outs]
    out = {"probs": None if probs[0] is None else torch.stack(probs).mean(0), "pool_weights": outs[0]["pool_weights"],
           "alpha": None if any(o["alpha"] is None for o in outs) else torch.stack([o["alpha"] for o in outs]).mean(0),
           "markers": None}
    if outs[0]["markers"] is not None:
        out["markers"] = {m: torch.logit(torch.stack([torch.sigmoid(o["markers"][m]) for o in outs]).mean(0),
                                         eps=1e-7) for m in outs[0]["markers"]}
    return out


def single_pass(probs: torch.Tensor | None, markers: dict[str, torch.Tensor] | None) -> dict:
    """What one pass said: its label map (``1 × spatial`` uint8 argmax of ``1 × K × spatial`` ``probs``, or None)
    and its marker probabilities (per marker, a list with one value)."""
    return {"labels": None if probs is None else class_argmax(probs[0])[None].to(torch.uint8).cpu(),
            "markers": {m: [v] for m, v in marker_probabilities(markers).items()}}


def join_passes(passes: list[dict]) -> dict:
    """Several passes' :func:`single_pass` (or joined) outputs as one: labels stacked, marker probabilities listed."""
    labels = [p["labels"] for p in passes]
    return {"labels": None if any(v is None for v in labels) else torch.cat(labels),
            "markers": {m: [x for p in passes for x in p["markers"][m]] for m in passes[0]["markers"]}}


def _first(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value[:1]


def marker_probabilities(markers: dict[str, torch.Tensor] | None) -> dict[str, float]:
    """Sigmoid of the marker logits of a single case, in :data:`MARKERS` order."""
    if not markers:
        return {}
    return {m: float(torch.sigmoid(markers[m].float().flatten()[0])) for m in MARKERS if m in markers}


@dataclass
class NetworkOutput:
    """What the network said about one preprocessed volume, averaged over its passes (flips, ensemble members).

    Attributes:
        probs: Class probabilities ``1 × K × spatial`` in the network grid, or None for a marker-only model.
        markers: Marker logits (one value each), or None.
        alpha: CMAF weights ``1 × S × spatial``, or None.
        pool_weights: Attention-pooling weights of the first pass at the encoder's grid, or None.
        passes: What each pass said on its own (:func:`single_pass`, joined by :func:`join_passes`).
        uncertainty: The passes' disagreement (:func:`~gliomics.inference.uncertainty.case_uncertainty`), None with
            one pass.
    """

    probs: torch.Tensor | None
    markers: dict[str, torch.Tensor] | None
    alpha: torch.Tensor | None
    pool_weights: torch.Tensor | None
    passes: dict[str, Any]
    uncertainty: dict[str, Any] | None = None

    @property
    def marker_probabilities(self) -> dict[str, float]:
        """Sigmoid of the marker logits, in :data:`MARKERS` order."""
        return marker_probabilities(self.markers)
