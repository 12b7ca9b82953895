"""The MGMT-Net multi-task loss: Dice + CE with deep supervision, plus masked, smoothed, weighted marker BCE."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, FocalLoss
from torch import nn

from gliomics.constants import MARKERS

if TYPE_CHECKING:
    from gliomics.config import LossConfig

__all__ = ["DiceFocalSoftmaxLoss", "MultiTaskLoss", "known_marker_mask", "pos_weight_from_labels"]


def known_marker_mask(y: torch.Tensor) -> torch.Tensor:
    """True where a marker label is known: finite and not negative (unknown is NaN or -1)."""
    return torch.isfinite(y) & (y >= 0)


def pos_weight_from_labels(
    labels: Mapping[str, Sequence[Any]] | Any, markers: Sequence[str] = MARKERS
) -> dict[str, float]:
    """``pos_weight = n_negative / n_positive`` per marker from the training labels, ignoring unknown labels.

    Args:
        labels: a mapping marker -> labels (1, 0, NaN/None/-1 for unknown), or an array ``N x len(markers)``
            with columns in the order of ``markers``.
        markers: the marker names.

    Returns:
        marker -> weight; 1.0 where a class is absent (no information on the imbalance).
    """
    if not isinstance(labels, Mapping):
        arr = np.asarray(labels, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != len(markers):
            raise ValueError(f"labels must be N x {len(markers)} (columns {tuple(markers)}), got shape {arr.shape}.")
        labels = {m: arr[:, i] for i, m in enumerate(markers)}
    out = {}
    for m in markers:
        values = np.asarray([np.nan if v is None else v for v in labels.get(m, [])], dtype=float)
        known = values[np.isfinite(values) & (values >= 0)]
        pos, neg = int((known > 0.5).sum()), int((known <= 0.5).sum())
        out[m] = neg / pos if pos and neg else 1.0
    return out


class DiceFocalSoftmaxLoss(nn.Module):
    """``lambda_dice * Dice + lambda_focal * focal`` on softmax outputs with class-index targets.

    MONAI's ``DiceFocalLoss`` shares one ``include_background`` between its terms; here the Dice may leave the
    background out (batch Dice, as nnU-Net) while the focal term always keeps it, since background voxels must be
    classified too.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_focal: weight of the focal term.
        gamma: focusing parameter.
        include_background: include the background class in the Dice term.
        batch: compute the Dice over the whole batch.
    """

    def __init__(self, lambda_dice: float = 1.0, lambda_focal: float = 1.0, gamma: float = 2.0,
                 include_background: bool = False, batch: bool = True) -> None:
        super().__init__()
        self.lambda_dice, self.lambda_focal = lambda_dice, lambda_focal
        self.dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=include_background, batch=batch)
        self.focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=gamma, include_background=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.lambda_dice * self.dice(logits, target) + self.lambda_focal * self.focal(logits, target)


class MultiTaskLoss(nn.Module):
    """Loss of MGMT-Net, sections 3.3-3.4 of Abdusalomov et al., Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>::

        total = sum_k w_k (lambda_Dice Dice + lambda_CE CE)(seg_k) + sum_m beta_m BCE_m

    - Segmentation: MONAI ``DiceCELoss(to_onehot_y=True, softmax=True)`` on the main output and on each
      deep-supervision output; the target is resized to each head with nearest-neighbour interpolation (cheaper than
      upsampling the logits, as in nnU-Net). The weights of the heads present are normalised to sum to 1, so that the
      loss has the same scale in training (with auxiliary heads) and in validation (without).
    - Markers: BCE on logits with targets smoothed to ``y (1 - eps) + eps / 2``, ``pos_weight`` per marker (from the
      training prevalence, see :func:`pos_weight_from_labels`), and weight ``beta_m``. Unknown labels (NaN or -1) are
      masked; a marker with no known label in the batch contributes an exact, still differentiable, zero. With
      ``focal=True`` MONAI's sigmoid ``FocalLoss`` replaces the BCE, ``pos_weight`` then scales the positive term.

    ``forward(outputs, targets)`` takes the model's output dict (``seg``, ``deep_supervision``, ``markers``; ``seg``
    or ``markers`` may be ``None``) and ``targets`` with ``label`` (``B x 1 x spatial`` or ``B x spatial`` class
    indices; may be absent or ``None``) and ``markers`` (dict marker -> ``B`` values, or ``B x len(markers)`` in the
    order of ``markers``; may be absent). It returns ``total``, ``seg``, ``marker`` and ``marker_<name>`` tensors.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
        deep_supervision_weights: weights of the main output then the auxiliary heads, finest first.
        marker_weights: marker -> beta; missing markers get 1.0.
        label_smoothing: eps of the marker targets.
        pos_weight: marker -> weight of positive labels; missing markers (or ``None``) get 1.0.
        focal: use the focal loss for the markers.
        focal_gamma: focusing parameter of the focal loss.
        seg_ce: ``"ce"`` (Dice + cross-entropy) or ``"focal"`` (Dice + softmax focal loss, which down-weights the
            many easy background voxels so that small classes such as ET and NETC get their share of the gradient).
        seg_focal_gamma: focusing parameter of the segmentation focal loss.
        markers: the marker names.
        batch_dice: compute the Dice over the whole batch rather than per patch.
        include_background: include the background class in the Dice term.
    """

    def __init__(
        self,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        deep_supervision_weights: Sequence[float] = (1.0, 0.5, 0.25),
        marker_weights: Mapping[str, float] | None = None,
        label_smoothing: float = 0.1,
        pos_weight: Mapping[str, float] | None = None,
        focal: bool = False,
        focal_gamma: float = 2.0,
        seg_ce: str = "ce",
        seg_focal_gamma: float = 2.0,
        markers: Sequence[str] = MARKERS,
        batch_dice: bool = True,
        include_background: bool = False,
        lambda_wt: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        if not deep_supervision_weights or any(w < 0 for w in deep_supervision_weights):
            raise ValueError(f"deep_supervision_weights must be non-empty and >= 0, got {deep_supervision_weights}.")
        self.markers = tuple(markers)
        for name, mapping in (("marker_weights", marker_weights), ("pos_weight", pos_weight)):
            unknown = sorted(set(mapping or {}) - set(self.markers))
            if unknown:
                raise ValueError(f"{name} has unknown marker(s) {unknown}; markers are {self.markers}.")
        # Batch Dice without the background (nnU-Net's choice): a label absent from one patch (RC before surgery,
        # ET in many low-grade tumours) then does not reward predicting nothing, which stalls small structures.
        if seg_ce == "ce":
            self.seg_loss: nn.Module = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=lambda_dice,
                                                  lambda_ce=lambda_ce, include_background=include_background,
                                                  batch=batch_dice)
        elif seg_ce == "focal":
            self.seg_loss = DiceFocalSoftmaxLoss(lambda_dice, lambda_ce, seg_focal_gamma, include_background,
                                                 batch_dice)
        else:
            raise ValueError(f"seg_ce must be 'ce' or 'focal', got {seg_ce!r}.")
        self.ds_weights = [float(w) for w in deep_supervision_weights]
        self.marker_weights = {m: float((marker_weights or {}).get(m, 1.0)) for m in self.markers}
        self.label_smoothing = label_smoothing
        self.register_buffer("pos_weight", torch.tensor([float((pos_weight or {}).get(m, 1.0)) for m in self.markers]))
        self.focal = FocalLoss(gamma=focal_gamma, reduction="none") if focal else None
        self.lambda_wt = float(lambda_wt)
        self.wt_dice = DiceLoss(sigmoid=True, batch=batch_dice)

    @classmethod
    def from_config(cls, cfg: LossConfig, pos_weight: Mapping[str, float] | None = None) -> MultiTaskLoss:
        """Build from a :class:`~gliomics.config.LossConfig`; ``pos_weight`` fills in when the config has none."""
        return cls(
            lambda_dice=cfg.lambda_dice,
            lambda_ce=cfg.lambda_ce,
            deep_supervision_weights=cfg.deep_supervision_weights,
            marker_weights=cfg.marker_weights,
            label_smoothing=cfg.label_smoothing,
            pos_weight=cfg.pos_weight if cfg.pos_weight is not None else pos_weight,
            focal=cfg.focal,
            focal_gamma=cfg.focal_gamma,
            seg_ce=cfg.seg_ce,
            seg_focal_gamma=cfg.seg_focal_gamma,
            batch_dice=cfg.batch_dice,
            include_background=cfg.include_background,
            lambda_wt=cfg.lambda_wt,
        )

    def segmentation(self, seg: torch.Tensor, aux: Sequence[torch.Tensor], label: torch.Tensor) -> torch.Tensor:
        """Weighted Dice + CE over the main and the deep-supervision outputs."""
        heads = [seg, *aux]
        if len(heads) > len(self.ds_weights):
            raise ValueError(
                f"the model gave {len(heads)} segmentation outputs but deep_supervision_weights has only "
                f"{len(self.ds_weights)} weights."
            )
        if label.ndim == seg.ndim - 1:
            label = label.unsqueeze(1)
        weights = self.ds_weights[: len(heads)]
        total = seg.new_zeros(())
        for w, logits in zip(weights, heads, strict=True):
            target = label
            if target.shape[2:] != logits.shape[2:]:
                target = F.interpolate(label.float(), size=logits.shape[2:], mode="nearest")
            total = total + w * self.seg_loss(logits, target)
        return total / sum(weights)

    def whole_tumour(self, seg: torch.Tensor, aux: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Dice + BCE of the tumour probability ``1 - p(background)`` against a whole-tumour mask, over the main and
        the deep-supervision outputs with the segmentation's weights.

        ``1 - p(background)`` is ``sigmoid(logsumexp(tumour logits) - background logit)``, so both terms run on that
        logit without forming the probability (stable under bf16).
        """
        heads = [seg, *aux]
        if mask.ndim == seg.ndim - 1:
            mask = mask.unsqueeze(1)
        weights = self.ds_weights[: len(heads)]
        total = seg.new_zeros(())
        for w, logits in zip(weights, heads, strict=True):
            target = mask.float()
            if target.shape[2:] != logits.shape[2:]:
                target = F.interpolate(target, size=logits.shape[2:], mode="nearest")
            tumour = (torch.logsumexp(logits[:, 1:].float(), 1, keepdim=True) - logits[:, :1].float())
            total = total + w * (self.wt_dice(tumour, target) + F.binary_cross_entropy_with_logits(tumour, target))
        return total / sum(weights)

    def _marker_targets(self, markers: Any, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        if isinstance(markers, Mapping):
            found = {m: markers[m] for m in self.markers if m in markers}
        else:
            table = torch.as_tensor(markers, dtype=torch.float32)
            if table.ndim != 2 or table.shape[1] != len(self.markers):
                raise ValueError(
                    f"marker targets must be B x {len(self.markers)} (columns {self.markers}), "
                    f"got {tuple(table.shape)}."
                )
            found = {m: table[:, i] for i, m in enumerate(self.markers)}
        out = {}
        for m, y in found.items():
            y = torch.as_tensor(y, dtype=torch.float32, device=device).reshape(-1)
            if y.numel() != batch:
                raise ValueError(f"marker {m!r} has {y.numel()} targets for a batch of {batch}.")
            out[m] = y
        return out

    def marker(self, logits: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
        """Masked, smoothed, class-weighted BCE (or focal) of one marker, averaged over its known labels."""
        known = known_marker_mask(y)
        # Unknown targets are replaced before the loss is computed: NaN * 0 would still be NaN.
        y = torch.where(known, y, torch.zeros_like(y)).clamp(0.0, 1.0)
        y = y * (1.0 - self.label_smoothing) + self.label_smoothing / 2.0
        pos_weight = self.pos_weight[index].to(logits.dtype)
        if self.focal is None:
            per_case = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
        else:
            per_case = self.focal(logits.unsqueeze(1), y.unsqueeze(1)).squeeze(1) * (pos_weight * y + (1.0 - y))
        known = known.to(per_case.dtype)
        return (per_case * known).sum() / known.sum().clamp(min=1.0)

    def forward(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        seg, label = outputs.get("seg"), targets.get("label")
        pred_markers = outputs.get("markers")
        ref = seg if seg is not None else next(iter(pred_markers.values()), None) if pred_markers else None
        if ref is None:
            raise ValueError("outputs hold neither 'seg' nor 'markers'; nothing to compute a loss on.")
        zero = ref.new_zeros(())
        result: dict[str, torch.Tensor] = {}
        # A zero that still touches the outputs keeps every parameter in the graph (DDP requires it).
        result["seg"] = result["wt"] = seg.sum() * 0.0 if seg is not None else zero
        if seg is not None and label is not None:
            aux = list(outputs.get("deep_supervision") or [])
            label = torch.as_tensor(label, device=seg.device)
            flags = targets.get("supervision")
            if flags is None:  # every case has subregion labels
                result["seg"] = self.segmentation(seg, aux, label)
            else:
                flags = torch.as_tensor(flags, device=seg.device).reshape(seg.shape[0], 2) > 0.5
                has_seg, has_wt = flags[:, 0], flags[:, 1] & ~flags[:, 0]
                if bool(has_seg.any()):
                    result["seg"] = self.segmentation(seg[has_seg], [a[has_seg] for a in aux], label[has_seg])
                if bool(has_wt.any()) and self.lambda_wt > 0:
                    result["wt"] = self.lambda_wt * self.whole_tumour(seg[has_wt], [a[has_wt] for a in aux],
                                                                      label[has_wt])
        marker_total = zero
        if pred_markers is not None:
            batch = next(iter(pred_markers.values())).shape[0]
            given = targets.get("markers")
            ys = self._marker_targets(given, batch, ref.device) if given is not None else {}
            for i, m in enumerate(self.markers):
                if m not in pred_markers:
                    result[f"marker_{m}"] = zero
                    continue
                # A marker without targets counts as all unknown: an exact zero, still in the graph.
                y = ys.get(m, torch.full((batch,), float("nan"), device=ref.device))
                term = self.marker(pred_markers[m].reshape(-1), y, i)
                result[f"marker_{m}"] = term
                marker_total = marker_total + self.marker_weights[m] * term
        else:
            result.update({f"marker_{m}": zero for m in self.markers})
        result["marker"] = marker_total
        result["total"] = result["seg"] + result["wt"] + marker_total
        return result
