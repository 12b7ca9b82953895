"""MultiTaskLoss: masking of unknown marker labels, smoothing, pos_weight, deep supervision, missing tasks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gliomics.config import LossConfig
from gliomics.constants import MARKERS, NUM_CLASSES
from gliomics.losses import MultiTaskLoss, pos_weight_from_labels

IDH, CODEL, TERT = MARKERS  # only the order matters here


def _outputs(batch: int = 4, size: int = 8, aux: bool = True, requires_grad: bool = True) -> dict:
    torch.manual_seed(0)
    seg = torch.randn(batch, NUM_CLASSES, size, size, size, requires_grad=requires_grad)
    ds = [torch.randn(batch, NUM_CLASSES, size // 2, size // 2, size // 2)] if aux else []
    markers = {m: torch.randn(batch, requires_grad=requires_grad) for m in MARKERS}
    return {"seg": seg, "deep_supervision": ds, "markers": markers, "alpha": None, "pool_weights": None}


def _label(batch: int = 4, size: int = 8) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (batch, 1, size, size, size))


def test_unknown_labels_do_not_change_the_loss() -> None:
    loss = MultiTaskLoss()
    out = _outputs()
    targets = {"label": _label(), "markers": {IDH: torch.tensor([1.0, float("nan"), 0.0, -1.0])}}
    before = loss(out, targets)
    out["markers"][IDH] = out["markers"][IDH].detach().clone()
    out["markers"][IDH][1] = 50.0  # unknown (NaN)
    out["markers"][IDH][3] = -50.0  # unknown (-1)
    after = loss(out, targets)
    torch.testing.assert_close(before[f"marker_{IDH}"], after[f"marker_{IDH}"])
    out["markers"][IDH][0] = -50.0  # known: must change
    assert not torch.allclose(before[f"marker_{IDH}"], loss(out, targets)[f"marker_{IDH}"])


def test_marker_term_matches_smoothed_weighted_bce() -> None:
    loss = MultiTaskLoss(label_smoothing=0.1, pos_weight={TERT: 3.0}, marker_weights={TERT: 0.5})
    logits = torch.tensor([0.3, -1.2, 2.0])
    y = torch.tensor([1.0, 0.0, float("nan")])
    out = {"seg": None, "markers": {m: logits for m in MARKERS}}
    res = loss(out, {"markers": {TERT: y}})
    expected = F.binary_cross_entropy_with_logits(logits[:2], torch.tensor([0.95, 0.05]), pos_weight=torch.tensor(3.0))
    torch.testing.assert_close(res[f"marker_{TERT}"], expected)
    torch.testing.assert_close(res["marker"], 0.5 * expected)
    torch.testing.assert_close(res["total"], res["marker"])
    assert float(res["seg"]) == 0.0


def test_no_known_label_gives_a_differentiable_zero() -> None:
    loss = MultiTaskLoss()
    out = _outputs()
    res = loss(out, {"label": _label(), "markers": torch.full((4, len(MARKERS)), float("nan"))})
    assert float(res["marker"].detach()) == 0.0
    res["total"].backward()
    for m in MARKERS:
        assert out["markers"][m].grad is not None and (out["markers"][m].grad == 0).all()


def test_marker_table_and_focal() -> None:
    table = torch.tensor([[1.0, 0.0, -1.0], [0.0, float("nan"), 1.0]])
    out = {"seg": None, "markers": {m: torch.tensor([0.5, -0.5]) for m in MARKERS}}
    bce = MultiTaskLoss()(out, {"markers": table})
    focal = MultiTaskLoss(focal=True)(out, {"markers": table})
    assert all(math.isfinite(float(v)) for v in focal.values())
    assert float(focal["marker"]) < float(bce["marker"])  # the focal factor is below 1
    with pytest.raises(ValueError, match="B x 3"):
        MultiTaskLoss()(out, {"markers": torch.zeros(2, 2)})


def test_segmentation_with_deep_supervision_and_missing_tasks() -> None:
    loss = MultiTaskLoss(deep_supervision_weights=(1.0, 0.5, 0.25))
    label = _label()
    out = _outputs()
    with_ds = loss(out, {"label": label})
    main_only = loss({**out, "deep_supervision": []}, {"label": label})
    assert with_ds["seg"].item() != pytest.approx(main_only["seg"].item())
    # A 4D label (no channel axis) is accepted; no marker targets means no marker loss.
    torch.testing.assert_close(loss(out, {"label": label[:, 0]})["seg"], with_ds["seg"])
    assert with_ds["marker"].item() == 0.0
    seg_only = loss({**out, "markers": None}, {"label": label, "markers": {IDH: torch.ones(4)}})
    torch.testing.assert_close(seg_only["total"], seg_only["seg"])
    with pytest.raises(ValueError, match="deep_supervision_weights has only 1"):
        MultiTaskLoss(deep_supervision_weights=(1.0,))(out, {"label": label})


def test_perfect_segmentation_has_a_small_loss() -> None:
    label = _label()
    logits = F.one_hot(label[:, 0], NUM_CLASSES).permute(0, 4, 1, 2, 3).float() * 20
    res = MultiTaskLoss()({"seg": logits, "markers": None}, {"label": label})
    assert float(res["seg"]) < 1e-3


def test_pos_weight_from_labels() -> None:
    weights = pos_weight_from_labels({IDH: [1, 0, 0, 0, None, float("nan")], CODEL: [1, 1], TERT: [-1, 0, 1]})
    assert weights == {IDH: 3.0, CODEL: 1.0, TERT: 1.0}
    table = [[1, 0, 0], [0, 0, 1], [0, float("nan"), 0]]
    assert pos_weight_from_labels(table) == {IDH: 2.0, CODEL: 1.0, TERT: 2.0}


def test_from_config_and_argument_checks() -> None:
    cfg = LossConfig(marker_weights={TERT: 0.5}, pos_weight=None, focal=True)
    loss = MultiTaskLoss.from_config(cfg, pos_weight={IDH: 2.0})
    assert loss.marker_weights == {IDH: 1.0, CODEL: 1.0, TERT: 0.5}
    assert loss.pos_weight.tolist() == [2.0, 1.0, 1.0] and loss.focal is not None
    with pytest.raises(ValueError, match="unknown marker"):
        MultiTaskLoss(marker_weights={"mgmt": 1.0})
    with pytest.raises(ValueError, match="label_smoothing"):
        MultiTaskLoss(label_smoothing=1.0)


def test_focal_segmentation_loss_weights_hard_voxels() -> None:
    from monai.losses import DiceLoss, FocalLoss

    from gliomics.losses import DiceFocalSoftmaxLoss

    torch.manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 6, 6, 6)
    label = torch.randint(0, NUM_CLASSES, (2, 1, 6, 6, 6))
    loss = DiceFocalSoftmaxLoss(lambda_dice=1.0, lambda_focal=2.0, gamma=2.0)
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, label)
    focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0)(logits, label)
    torch.testing.assert_close(loss(logits, label), dice + 2.0 * focal)
    # an easy, confidently right background voxel adds almost nothing to the focal term, unlike cross-entropy
    easy = torch.zeros(1, NUM_CLASSES, 1, 1, 1)
    easy[0, 0] = 6.0
    target = torch.zeros(1, 1, 1, 1, 1, dtype=torch.long)
    assert float(loss.focal(easy, target)) < 0.01 * float(F.cross_entropy(easy, target[:, 0]))
    cfg = LossConfig(seg_ce="focal", seg_focal_gamma=1.0)
    crit = MultiTaskLoss.from_config(cfg)
    assert isinstance(crit.seg_loss, DiceFocalSoftmaxLoss)
    out = crit({"seg": logits.requires_grad_(), "markers": None}, {"label": label})
    out["seg"].backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="seg_ce"):
        MultiTaskLoss(seg_ce="dice")


# --- partial supervision: subregions, whole-tumour masks and markers on different cases ------------------------------


def _flags(*rows: tuple[int, int]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_each_term_is_zero_where_its_label_is_missing() -> None:
    loss = MultiTaskLoss()
    out = _outputs(batch=2)
    nan = torch.full((2, len(MARKERS)), float("nan"))
    res = loss(out, {"label": _label(batch=2), "markers": nan, "supervision": _flags((0, 0), (0, 0))})
    assert all(float(res[k].detach()) == 0.0 for k in ("seg", "wt", "marker"))
    res["total"].backward()  # still differentiable (DDP needs every parameter in the graph)
    assert out["seg"].grad is not None and float(out["seg"].grad.abs().sum()) == 0.0


def test_segmentation_term_uses_only_the_cases_with_subregions() -> None:
    loss = MultiTaskLoss()
    out, label = _outputs(batch=4), _label(batch=4)
    mixed = loss(out, {"label": label, "supervision": _flags((1, 0), (0, 0), (1, 0), (0, 1))})
    keep = torch.tensor([0, 2])
    alone = loss.segmentation(out["seg"][keep], [a[keep] for a in out["deep_supervision"]], label[keep])
    assert float(mixed["seg"].detach()) == pytest.approx(float(alone.detach()), rel=1e-6)
    # no flags: every case has subregions, as before
    assert float(loss(out, {"label": label})["seg"]) == pytest.approx(
        float(loss.segmentation(out["seg"], out["deep_supervision"], label)), rel=1e-6)


def test_whole_tumour_term_is_dice_plus_bce_of_one_minus_background() -> None:
    loss = MultiTaskLoss(deep_supervision_weights=(1.0,))
    out = _outputs(batch=2, aux=False)
    mask = (torch.rand(2, 1, 8, 8, 8) > 0.5).to(torch.uint8)
    res = loss(out, {"label": mask, "supervision": _flags((0, 1), (0, 1))})
    p_tumour = 1.0 - torch.softmax(out["seg"], 1)[:, :1]
    y = mask.float()
    inter, denom = (p_tumour * y).sum(), p_tumour.sum() + y.sum()
    dice = 1.0 - (2 * inter + 1e-5) / (denom + 1e-5)
    bce = F.binary_cross_entropy(p_tumour, y)
    assert float(res["wt"]) == pytest.approx(float(dice + bce), rel=1e-4)
    assert float(res["seg"]) == 0.0
    # a tumour probability that matches the mask scores far better than a random one
    perfect = torch.where(mask.bool(), torch.tensor(-8.0), torch.tensor(8.0)).float()
    logits = torch.cat([perfect, -perfect.expand(-1, NUM_CLASSES - 1, -1, -1, -1)], 1)
    good = loss({"seg": logits, "markers": None}, {"label": mask, "supervision": _flags((0, 1), (0, 1))})
    assert float(good["wt"]) < 0.05 < float(res["wt"])
    # the weight scales it, 0 switches it off
    assert float(MultiTaskLoss(deep_supervision_weights=(1.0,), lambda_wt=0.0)(
        out, {"label": mask, "supervision": _flags((0, 1), (0, 1))})["wt"]) == 0.0


def test_a_case_with_subregions_and_a_mask_is_scored_on_its_subregions() -> None:
    loss = MultiTaskLoss()
    out, label = _outputs(batch=2), _label(batch=2)
    res = loss(out, {"label": label, "supervision": _flags((1, 1), (1, 1))})
    assert float(res["wt"]) == 0.0 and float(res["seg"]) > 0
