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


# --- exact values on hand-built inputs ---------------------------------------------------------------------------


def test_pos_weight_is_negatives_over_positives_of_known_labels() -> None:
    """neg / pos over the known labels (0 counts, 0.5 is negative; None, NaN and -1 are unknown); 1.0 without both
    classes or without the marker."""
    weights = pos_weight_from_labels({IDH: [1, 1, 0, 0, 0, None, float("nan"), -1, 0.5], TERT: [1, 1, 1, 1, 0, 0, 0]})
    assert weights == {IDH: 2.0, CODEL: 1.0, TERT: 0.75}
    assert pos_weight_from_labels({IDH: [0, 0, 0], CODEL: [1], TERT: []}) == {IDH: 1.0, CODEL: 1.0, TERT: 1.0}
    assert list(weights) == [IDH, CODEL, TERT]


def test_pos_weight_array_columns_follow_the_marker_order() -> None:
    """An N x len(markers) table is read column by column in the order of ``markers``."""
    nan = float("nan")
    table = [[1, 1, 0], [0, 1, 1], [0, 0, 1], [0, nan, 0], [-1, 1, 0]]
    assert pos_weight_from_labels(table) == {IDH: 3.0, CODEL: 1 / 3, TERT: 1.5}
    assert pos_weight_from_labels([[1, 0], [0, 0], [0, 1], [0, 1]], markers=("a", "b")) == {"a": 3.0, "b": 1.0}
    with pytest.raises(ValueError, match=r"labels must be N x 3 \(columns \('idh', 'codel_1p19q', 'tert'\)\), got "
                                         r"shape \(3,\)"):
        pos_weight_from_labels([1, 0, 1])
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        pos_weight_from_labels([[1, 0], [0, 1]])


def test_dice_focal_defaults_match_monai() -> None:
    """Defaults: Dice without background over the batch plus a softmax focal loss (gamma 2, background kept)."""
    from monai.losses import DiceLoss, FocalLoss

    from gliomics.losses import DiceFocalSoftmaxLoss

    torch.manual_seed(1)
    logits = torch.randn(2, NUM_CLASSES, 4, 4, 4)
    label = torch.randint(0, NUM_CLASSES, (2, 1, 4, 4, 4))
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)(logits, label)
    focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, include_background=True)(logits, label)
    torch.testing.assert_close(DiceFocalSoftmaxLoss()(logits, label), dice + focal)


def test_dice_focal_non_default_arguments_match_monai() -> None:
    """Non-default gamma, weights, background and per-sample Dice reach the two MONAI terms."""
    from monai.losses import DiceLoss, FocalLoss

    from gliomics.losses import DiceFocalSoftmaxLoss

    torch.manual_seed(2)
    logits = torch.randn(2, NUM_CLASSES, 4, 4, 4)
    label = torch.randint(0, NUM_CLASSES, (2, 1, 4, 4, 4))
    loss = DiceFocalSoftmaxLoss(lambda_dice=0.3, lambda_focal=1.7, gamma=0.5, include_background=True, batch=False)
    dice = DiceLoss(to_onehot_y=True, softmax=True, include_background=True, batch=False)(logits, label)
    focal = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=0.5, include_background=True)(logits, label)
    torch.testing.assert_close(loss(logits, label), 0.3 * dice + 1.7 * focal)
    other = DiceFocalSoftmaxLoss(lambda_dice=0.3, lambda_focal=1.7, gamma=0.5, include_background=False, batch=True)
    assert float(other(logits, label)) != pytest.approx(float(loss(logits, label)))


def _heads(batch: int = 2) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    torch.manual_seed(3)
    seg = torch.randn(batch, NUM_CLASSES, 8, 8, 8)
    aux = [torch.randn(batch, NUM_CLASSES, 4, 4, 4), torch.randn(batch, NUM_CLASSES, 2, 2, 2)]
    label = torch.randint(0, NUM_CLASSES, (batch, 1, 8, 8, 8))
    return seg, aux, label


def test_deep_supervision_is_the_normalised_weighted_sum_of_the_heads() -> None:
    """(1 L0 + 0.5 L1 + 0.25 L2) / 1.75 by default, each head against the label subsampled to its grid."""
    from monai.losses import DiceCELoss

    seg, aux, label = _heads()
    ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    losses = [ref(seg, label), ref(aux[0], label[..., ::2, ::2, ::2]), ref(aux[1], label[..., ::4, ::4, ::4])]
    res = MultiTaskLoss()({"seg": seg, "deep_supervision": aux, "markers": None}, {"label": label})
    expected = (1.0 * losses[0] + 0.5 * losses[1] + 0.25 * losses[2]) / 1.75
    torch.testing.assert_close(res["seg"], expected)
    torch.testing.assert_close(res["total"], expected)
    # two heads use the first two weights
    two = MultiTaskLoss().segmentation(seg, aux[:1], label)
    torch.testing.assert_close(two, (losses[0] + 0.5 * losses[1]) / 1.5)


def test_segmentation_loss_arguments_reach_dice_ce() -> None:
    """lambda_dice, lambda_ce, the background and per-sample Dice, and custom head weights (zero allowed)."""
    from monai.losses import DiceCELoss

    seg, aux, label = _heads()
    loss = MultiTaskLoss(lambda_dice=0.7, lambda_ce=1.3, include_background=True, batch_dice=False,
                         deep_supervision_weights=(2.0, 0.0, 1.0))
    ref = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=0.7, lambda_ce=1.3, include_background=True,
                     batch=False)
    expected = (2.0 * ref(seg, label) + 1.0 * ref(aux[1], label[..., ::4, ::4, ::4])) / 3.0
    torch.testing.assert_close(loss.segmentation(seg, aux, label), expected)


def test_a_head_coarser_along_one_axis_gets_a_resized_target() -> None:
    """A deep-supervision head that differs from the label along the first spatial axis only is scored against the
    label subsampled along that axis, in both the segmentation and the whole-tumour terms."""
    from monai.losses import DiceCELoss

    seg, _, label = _heads()
    torch.manual_seed(5)
    aux = torch.randn(2, NUM_CLASSES, 4, 8, 8)
    loss = MultiTaskLoss(deep_supervision_weights=(1.0, 0.5))
    ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
    expected = (ref(seg, label) + 0.5 * ref(aux, label[:, :, ::2])) / 1.5
    torch.testing.assert_close(loss.segmentation(seg, [aux], label), expected)
    mask = (label > 0).float()
    wt = (_wt_reference(seg, mask, True) + 0.5 * _wt_reference(aux, mask[:, :, ::2], True)) / 1.5
    torch.testing.assert_close(loss.whole_tumour(seg, [aux], mask), wt, rtol=1e-5, atol=1e-6)


def _wt_reference(logits: torch.Tensor, mask: torch.Tensor, batch: bool) -> torch.Tensor:
    """Dice + BCE of 1 - p(background) against the mask, by hand."""
    p = 1.0 - torch.softmax(logits, 1)[:, :1]
    dims = (0, 1, 2, 3, 4) if batch else (1, 2, 3, 4)
    inter, denom = (p * mask).sum(dims), p.sum(dims) + mask.sum(dims)
    dice = (1.0 - (2 * inter + 1e-5) / (denom + 1e-5)).mean()
    return dice + F.binary_cross_entropy(p, mask)


def test_whole_tumour_term_weights_heads_and_lambda() -> None:
    """The whole-tumour term over two heads: (1 T0 + 0.5 T1) / 1.5, scaled by lambda_wt; cases flagged by a
    supervision value of exactly 0.5 do not count as having that supervision."""
    seg, aux, _ = _heads()
    torch.manual_seed(4)
    mask = (torch.rand(2, 1, 8, 8, 8) > 0.5).float()
    loss = MultiTaskLoss(deep_supervision_weights=(1.0, 0.5), lambda_wt=2.5)
    expected = (_wt_reference(seg, mask, True) + 0.5 * _wt_reference(aux[0], mask[..., ::2, ::2, ::2], True)) / 1.5
    torch.testing.assert_close(loss.whole_tumour(seg, aux[:1], mask[:, 0]), expected, rtol=1e-5, atol=1e-6)
    res = loss({"seg": seg, "deep_supervision": aux[:1], "markers": None},
               {"label": mask, "supervision": torch.tensor([[0.5, 1.0], [0.0, 1.0]])})
    torch.testing.assert_close(res["wt"], 2.5 * expected, rtol=1e-5, atol=1e-6)
    assert float(res["seg"]) == 0.0
    torch.testing.assert_close(res["total"], res["wt"])
    per_case = MultiTaskLoss(deep_supervision_weights=(1.0,), batch_dice=False).whole_tumour(seg, [], mask)
    torch.testing.assert_close(per_case, _wt_reference(seg, mask, False), rtol=1e-5, atol=1e-6)
    half = loss({"seg": seg, "deep_supervision": aux[:1], "markers": None},
                {"label": mask, "supervision": torch.tensor([[0.0, 0.5], [0.0, 0.5]])})
    assert float(half["wt"]) == 0.0 and float(half["seg"]) == 0.0


def test_marker_bce_default_smoothing_exact() -> None:
    """Default eps 0.1: targets 0.95 / 0.05, a soft 0.7 becomes 0.68 and a 2 is clamped to 1; one known label is
    averaged over one, not more."""
    loss = MultiTaskLoss()
    logits = torch.tensor([0.4, -0.8, 1.5, 0.2])
    y = torch.tensor([1.0, 0.0, 0.7, 2.0])
    got = loss.marker(logits, y, 0)
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([0.95, 0.05, 0.68, 0.95]))
    torch.testing.assert_close(got, expected)
    single = loss.marker(logits, torch.tensor([float("nan"), -1.0, 0.0, float("nan")]), 0)
    torch.testing.assert_close(single, F.binary_cross_entropy_with_logits(torch.tensor(1.5), torch.tensor(0.05)))


def test_marker_terms_weights_and_result_keys() -> None:
    """Each marker's term is its own masked BCE; the marker total is their beta-weighted sum; every key returned."""
    loss = MultiTaskLoss(marker_weights={IDH: 0.5, CODEL: 2.0}, pos_weight={CODEL: 4.0}, label_smoothing=0.0)
    preds = {IDH: torch.tensor([0.3, -0.2]), CODEL: torch.tensor([1.0, -1.0]), TERT: torch.tensor([-0.5, 0.5])}
    table = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, float("nan")]])
    res = loss({"seg": None, "markers": preds}, {"markers": table})
    assert set(res) == {"seg", "wt", "marker", "total", f"marker_{IDH}", f"marker_{CODEL}", f"marker_{TERT}"}
    idh = F.binary_cross_entropy_with_logits(preds[IDH], torch.tensor([1.0, 0.0]))
    codel = F.binary_cross_entropy_with_logits(preds[CODEL], torch.tensor([0.0, 1.0]), pos_weight=torch.tensor(4.0))
    tert = F.binary_cross_entropy_with_logits(torch.tensor(-0.5), torch.tensor(1.0))
    torch.testing.assert_close(res[f"marker_{IDH}"], idh)
    torch.testing.assert_close(res[f"marker_{CODEL}"], codel)
    torch.testing.assert_close(res[f"marker_{TERT}"], tert)
    torch.testing.assert_close(res["marker"], 0.5 * idh + 2.0 * codel + tert)
    torch.testing.assert_close(res["total"], res["marker"])
    assert float(res["seg"]) == 0.0 and float(res["wt"]) == 0.0
    # a marker the model does not predict contributes an exact zero
    part = loss({"seg": None, "markers": {IDH: preds[IDH]}}, {"markers": table})
    assert float(part[f"marker_{CODEL}"]) == 0.0 and float(part[f"marker_{TERT}"]) == 0.0
    torch.testing.assert_close(part["marker"], 0.5 * idh)


def test_marker_focal_exact_value() -> None:
    """The focal term: BCE times exp(gamma * logsigmoid(-x (2y - 1))) on smoothed targets, the positive part scaled
    by pos_weight, averaged over the known labels."""
    loss = MultiTaskLoss(focal=True, focal_gamma=1.5, pos_weight={IDH: 3.0}, label_smoothing=0.2)
    x = torch.tensor([0.3, -1.2, 0.8])
    y = torch.tensor([0.9, 0.1, 0.1])  # smoothed 1, 0, 0
    bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    per_case = bce * torch.exp(1.5 * F.logsigmoid(-x * (2 * y - 1))) * (3.0 * y + (1.0 - y))
    got = loss.marker(x, torch.tensor([1.0, 0.0, 0.0]), 0)
    torch.testing.assert_close(got, per_case.mean())
    masked = loss.marker(x, torch.tensor([1.0, float("nan"), 0.0]), 0)
    torch.testing.assert_close(masked, (per_case[0] + per_case[2]) / 2)


def test_default_and_passed_loss_settings() -> None:
    """Defaults (focal gamma 2, seg focal gamma 2, eps 0.1, weights 1, 0.5, 0.25, lambda_wt 1, batch Dice) and
    non-default settings reach the terms."""
    loss = MultiTaskLoss(focal=True)
    assert loss.focal.gamma == 2.0 and loss.focal.reduction == "none" and loss.label_smoothing == 0.1
    assert loss.ds_weights == [1.0, 0.5, 0.25] and loss.lambda_wt == 1.0 and loss.pos_weight.tolist() == [1.0] * 3
    assert loss.marker_weights == {IDH: 1.0, CODEL: 1.0, TERT: 1.0} and loss.wt_dice.batch is True
    assert loss.wt_dice.sigmoid is True
    assert MultiTaskLoss().focal is None
    seg = MultiTaskLoss(seg_ce="focal").seg_loss
    assert seg.focal.gamma == 2.0 and seg.lambda_dice == 1.0 and seg.lambda_focal == 1.0
    assert seg.dice.include_background is False and seg.dice.batch is True
    custom = MultiTaskLoss(seg_ce="focal", lambda_dice=0.3, lambda_ce=0.7, seg_focal_gamma=0.5,
                           include_background=True, batch_dice=False, lambda_wt=0.25)
    seg = custom.seg_loss
    assert (seg.lambda_dice, seg.lambda_focal, seg.focal.gamma) == (0.3, 0.7, 0.5)
    assert seg.dice.include_background is True and seg.dice.batch is False and custom.wt_dice.batch is False
    assert custom.lambda_wt == 0.25


def test_from_config_passes_every_setting() -> None:
    """Every LossConfig field reaches the loss; a pos_weight in the config wins over the computed one."""
    cfg = LossConfig(lambda_dice=0.4, lambda_ce=0.6, deep_supervision_weights=[1.0, 0.3], marker_weights={IDH: 2.0},
                     label_smoothing=0.05, pos_weight={TERT: 5.0}, focal=True, focal_gamma=1.5, seg_ce="focal",
                     seg_focal_gamma=0.5, batch_dice=False, include_background=True, lambda_wt=0.2)
    loss = MultiTaskLoss.from_config(cfg, pos_weight={IDH: 9.0})
    assert loss.ds_weights == [1.0, 0.3] and loss.label_smoothing == 0.05 and loss.lambda_wt == 0.2
    assert loss.marker_weights == {IDH: 2.0, CODEL: 1.0, TERT: 1.0} and loss.pos_weight.tolist() == [1.0, 1.0, 5.0]
    assert loss.focal.gamma == 1.5
    seg = loss.seg_loss
    assert (seg.lambda_dice, seg.lambda_focal, seg.focal.gamma) == (0.4, 0.6, 0.5)
    assert seg.dice.include_background is True and seg.dice.batch is False
    ce = MultiTaskLoss.from_config(LossConfig(lambda_dice=0.4, lambda_ce=0.6))
    assert (ce.seg_loss.lambda_dice, ce.seg_loss.lambda_ce) == (0.4, 0.6) and ce.focal is None


def test_argument_checks_at_their_boundaries() -> None:
    """eps 0 and a zero head weight are accepted; negative eps, a negative or no weight and unknown pos_weight
    markers are refused."""
    assert MultiTaskLoss(label_smoothing=0.0, deep_supervision_weights=(1.0, 0.0)).ds_weights == [1.0, 0.0]
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got -0.01"):
        MultiTaskLoss(label_smoothing=-0.01)
    with pytest.raises(ValueError, match="deep_supervision_weights must be non-empty"):
        MultiTaskLoss(deep_supervision_weights=())
    with pytest.raises(ValueError, match=r"deep_supervision_weights must be non-empty and >= 0, got \(1.0, -0.1\)"):
        MultiTaskLoss(deep_supervision_weights=(1.0, -0.1))
    with pytest.raises(ValueError, match=r"pos_weight has unknown marker\(s\) \['mgmt'\]"):
        MultiTaskLoss(pos_weight={"mgmt": 2.0})
    with pytest.raises(ValueError, match=r"seg_ce must be 'ce' or 'focal', got 'dice'"):
        MultiTaskLoss(seg_ce="dice")


def test_marker_target_and_output_checks() -> None:
    """A target count unlike the batch, a table of the wrong width and outputs without any head are refused."""
    out = {"seg": None, "markers": {IDH: torch.zeros(2)}}
    with pytest.raises(ValueError, match=r"marker 'idh' has 3 targets for a batch of 2\."):
        MultiTaskLoss()(out, {"markers": {IDH: torch.ones(3)}})
    with pytest.raises(ValueError, match=r"marker targets must be B x 3 \(columns \('idh', 'codel_1p19q', 'tert'\)\), "
                                         r"got \(2, 2\)\."):
        MultiTaskLoss()(out, {"markers": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="nothing to compute a loss on"):
        MultiTaskLoss()({"seg": None, "markers": None}, {})
    # a segmentation without labels gives an exact zero for both segmentation terms
    res = MultiTaskLoss()({"seg": torch.ones(1, NUM_CLASSES, 2, 2, 2), "markers": None}, {})
    assert float(res["seg"]) == 0.0 and float(res["wt"]) == 0.0 and float(res["total"]) == 0.0


def test_integer_marker_targets_give_the_same_loss_as_float_ones() -> None:
    loss = MultiTaskLoss()
    out = {"markers": {TERT: torch.tensor([0.3, -1.2, 2.0])}}
    as_float = loss(out, {"markers": {TERT: torch.tensor([1.0, 0.0, 1.0])}})[f"marker_{TERT}"]
    as_int = loss(out, {"markers": {TERT: torch.tensor([1, 0, 1])}})[f"marker_{TERT}"]
    torch.testing.assert_close(as_int, as_float)


def test_unknown_markers_in_the_weights_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"^marker_weights has unknown marker\(s\) \['mgmt'\]"):
        MultiTaskLoss(marker_weights={"mgmt": 1.0})
    with pytest.raises(ValueError, match=r"^pos_weight has unknown marker\(s\) \['mgmt'\]"):
        MultiTaskLoss(pos_weight={"mgmt": 1.0})


def test_pos_weight_of_a_table_with_missing_cells() -> None:
    table = [[1, None, 0], [0, 1, None], [0, 0, 1], [None, 1, 1]]
    assert pos_weight_from_labels(table) == {"idh": 2.0, "codel_1p19q": 0.5, "tert": 0.5}
