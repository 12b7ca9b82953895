"""Post-processing: removal of tiny connected components (26-connectivity, volumes in mm³) and of labels whose
whole volume is below a minimum fitted on validation cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomics.constants import LABELS
from gliomics.inference.postprocess import (
    COMPONENT_CANDIDATES_MM3,
    class_argmax,
    fit_min_component_volumes,
    fit_min_label_volumes,
    postprocess_labels,
    relabel_detached_cavities,
    relabel_small_components,
    remove_small_components,
    suppress_small_labels,
    without_small_components,
)
from gliomics.labels import label_volumes_mm3

NETC, SNFH, ET, RC = LABELS["NETC"], LABELS["SNFH"], LABELS["ET"], LABELS["RC"]
ISO = (1.0, 1.0, 1.0)


def _big_tumour(shape: tuple[int, int, int] = (20, 20, 20)) -> np.ndarray:
    seg = np.zeros(shape, dtype=np.uint8)
    seg[2:10, 2:10, 2:10] = SNFH  # 512 voxels
    seg[4:8, 4:8, 4:8] = ET
    seg[5:7, 5:7, 5:7] = NETC
    return seg


def test_big_blob_survives_and_input_untouched() -> None:
    seg = _big_tumour()
    original = seg.copy()
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    np.testing.assert_array_equal(out, seg)
    np.testing.assert_array_equal(seg, original)
    assert out is not seg


def test_tiny_isolated_blob_removed_with_all_labels() -> None:
    seg = _big_tumour()
    seg[15:17, 15:17, 15:17] = SNFH  # 8 voxels, mixed labels, far from the big one
    seg[15, 15, 15] = ET
    seg[16, 16, 16] = NETC
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert not out[14:18, 14:18, 14:18].any()
    np.testing.assert_array_equal(out, _big_tumour())


def test_tiny_rc_island_removed_big_rc_kept() -> None:
    seg = _big_tumour()
    seg[12:18, 12:18, 12:18] = RC  # 216 voxels
    seg[0, 19, 0] = RC  # a 1-voxel stray cavity
    seg[0:2, 17:19, 18:20] = RC  # and an 8-voxel one, apart from everything else
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert (out == RC).sum() == 216
    assert out[0, 19, 0] == 0 and not out[0:2, 17:19, 18:20].any()
    # the tumour is unaffected by the RC pass
    np.testing.assert_array_equal(np.where(out == RC, 0, out), _big_tumour())


def test_rc_has_its_own_limit() -> None:
    seg = _big_tumour()
    seg[15:17, 15:17, 15:17] = RC  # 8 voxels of cavity
    kept = remove_small_components(seg, ISO, min_volume_mm3=50.0, min_rc_volume_mm3=5.0)
    assert (kept == RC).sum() == 8
    dropped = remove_small_components(seg, ISO, min_volume_mm3=50.0, min_rc_volume_mm3=10.0)
    assert (dropped == RC).sum() == 0


def test_rc_next_to_tumour_is_not_part_of_the_wt_component() -> None:
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[0:2, 0:2, 0:2] = SNFH  # 8 voxels of WT
    seg[2:8, 0:6, 0:6] = RC  # large cavity touching it: RC does not count towards the WT volume
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0)
    assert not np.isin(out, (NETC, SNFH, ET)).any()
    assert (out == RC).sum() == 6 * 6 * 6


def test_spacing_is_used() -> None:
    seg = np.zeros((10, 10, 10), dtype=np.uint8)
    seg[2:5, 2:5, 2:5] = ET  # 27 voxels: 27 mm³ at 1 mm, 216 mm³ at 2 mm
    assert not remove_small_components(seg, (1.0, 1.0, 1.0), min_volume_mm3=100.0).any()
    np.testing.assert_array_equal(remove_small_components(seg, (2.0, 2.0, 2.0), min_volume_mm3=100.0), seg)
    # anisotropic: 27 × 1 × 1 × 4 = 108 mm³
    np.testing.assert_array_equal(remove_small_components(seg, (1.0, 1.0, 4.0), min_volume_mm3=100.0), seg)


def test_limit_is_strict_lower_bound() -> None:
    seg = np.zeros((6, 6, 6), dtype=np.uint8)
    seg[1:3, 1:3, 1:3] = SNFH  # exactly 8 mm³
    np.testing.assert_array_equal(remove_small_components(seg, ISO, min_volume_mm3=8.0), seg)
    assert not remove_small_components(seg, ISO, min_volume_mm3=8.5).any()


def test_diagonal_voxels_form_one_component() -> None:
    seg = np.zeros((8, 8, 8), dtype=np.uint8)
    for k in range(6):
        seg[k, k, k] = SNFH  # a chain touching only at corners: 6 voxels if 26-connected, 6 × 1 otherwise
    out = remove_small_components(seg, ISO, min_volume_mm3=5.0)
    np.testing.assert_array_equal(out, seg)


def test_non_positive_limit_disables() -> None:
    seg = np.zeros((5, 5, 5), dtype=np.uint8)
    seg[0, 0, 0] = ET
    seg[4, 4, 4] = RC
    np.testing.assert_array_equal(remove_small_components(seg, ISO, min_volume_mm3=0.0), seg)


def test_empty_and_background_only() -> None:
    seg = np.zeros((4, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(remove_small_components(seg, ISO), seg)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_dtype_and_shape_preserved(dtype: type) -> None:
    seg = _big_tumour().astype(dtype)
    out = remove_small_components(seg, ISO)
    assert out.dtype == seg.dtype and out.shape == seg.shape


# ---- per-label minimum volumes ---------------------------------------------------------------------------------


def test_label_volumes_use_the_voxel_volume() -> None:
    seg = _big_tumour()
    seg[15:17, 15:17, 15:17] = RC
    volumes = label_volumes_mm3(seg, 8.0)
    assert volumes == {"NETC": 8 * 8.0, "SNFH": (512 - 64) * 8.0, "ET": (64 - 8) * 8.0, "RC": 8 * 8.0}


def _probs_for(labels: np.ndarray, runner_up: int) -> torch.Tensor:
    """Probabilities whose argmax is ``labels`` and whose second choice is ``runner_up`` everywhere."""
    probs = np.full((5, *labels.shape), 0.05, dtype=np.float32)
    probs[runner_up] = 0.3
    np.put_along_axis(probs, labels[None].astype(np.int64), 0.6, axis=0)
    return torch.from_numpy(probs)


def test_small_label_goes_to_the_next_most_probable_label() -> None:
    labels = _big_tumour()
    labels[12:14, 12:14, 12:14] = RC  # 8 voxels of cavity
    probs = _probs_for(labels, runner_up=NETC)
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 1.0, {"RC": 10.0, "ET": 10.0})
    out = out.numpy()
    assert names == ["RC"]  # ET (56 mm³) is above its minimum
    assert (out == RC).sum() == 0 and (out[12:14, 12:14, 12:14] == NETC).all()
    np.testing.assert_array_equal(out[:10, :10, :10], _big_tumour()[:10, :10, :10])


def test_suppression_keeps_labels_at_or_above_their_minimum_and_unnamed_labels() -> None:
    labels = _big_tumour()
    probs = _probs_for(labels, runner_up=0)
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 1.0, {"ET": 56.0, "RC": 1e9})
    assert names == []  # ET is exactly 56 mm³ (kept), RC is absent (nothing to suppress)
    np.testing.assert_array_equal(out.numpy(), labels)
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 1.0, {"NETC": 9.0})
    assert names == ["NETC"] and (out.numpy()[5:7, 5:7, 5:7] == 0).all()


def test_two_suppressed_labels_do_not_take_each_other_over() -> None:
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = ET
    labels[4:6, 4:6, 4:6] = NETC
    probs = _probs_for(labels, runner_up=ET)  # NETC's runner-up is ET, which is suppressed too
    probs[NETC][labels == ET] = 0.3  # and ET's runner-up is NETC (tied with ET elsewhere)
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 1.0, {"ET": 100.0, "NETC": 100.0})
    assert sorted(names) == ["ET", "NETC"] and not np.isin(out.numpy(), (ET, NETC)).any()


def _case(**labels: tuple[float, float, float]) -> dict:
    return labels


def test_fit_puts_the_minimum_between_false_positive_and_true_lesions() -> None:
    cases = [_case(RC=(100.0, 0.0, 0.0)), _case(RC=(1000.0, 900.0, 0.9)), _case(RC=(0.0, 0.0, 1.0)),
             _case(RC=(4000.0, 4200.0, 0.95))]
    minimum = fit_min_label_volumes(cases)["RC"]
    assert minimum == pytest.approx(np.sqrt(100.0 * 1000.0), abs=0.1)


def test_fit_leaves_out_labels_that_suppression_does_not_help() -> None:
    # the small prediction is a true lesion: suppressing it would cost its Dice
    cases = [_case(ET=(100.0, 120.0, 0.7)), _case(ET=(3000.0, 2900.0, 0.9)), _case(ET=(0.0, 0.0, 1.0))]
    assert fit_min_label_volumes(cases) == {}


def test_fit_suppresses_a_poor_small_true_lesion_only_with_a_false_positive_gain() -> None:
    # suppressing both small predictions: +1 for the false positive, -0.2 for the poor true lesion
    cases = [_case(NETC=(50.0, 60.0, 0.2)), _case(NETC=(80.0, 0.0, 0.0)), _case(NETC=(2000.0, 2100.0, 0.9))]
    assert fit_min_label_volumes(cases)["NETC"] == pytest.approx(np.sqrt(80.0 * 2000.0), abs=0.1)
    # the smallest suppression with the best mean wins: a useless extra case is not suppressed
    cases = [_case(NETC=(80.0, 0.0, 0.0)), _case(NETC=(500.0, 400.0, 0.0)), _case(NETC=(2000.0, 2100.0, 0.9))]
    assert fit_min_label_volumes(cases)["NETC"] == pytest.approx(np.sqrt(80.0 * 500.0), abs=0.1)


def test_fit_is_bounded_by_the_caps() -> None:
    cases = [_case(ET=(1500.0, 0.0, 0.0)), _case(ET=(3000.0, 2800.0, 0.8)), _case(RC=(100.0, 0.0, 0.0)),
             _case(RC=(5000.0, 5000.0, 0.9))]
    # ET's false positive is larger than the cap: it cannot be suppressed
    assert fit_min_label_volumes(cases, {"ET": 700.0, "RC": 400.0}) == {"RC": 400.0}
    assert fit_min_label_volumes(cases)["ET"] == pytest.approx(np.sqrt(1500.0 * 3000.0), abs=0.1)


def test_fit_when_every_prediction_is_false() -> None:
    cases = [_case(ET=(30.0, 0.0, 0.0)), _case(ET=(60.0, 0.0, 0.0))]
    assert fit_min_label_volumes(cases)["ET"] == pytest.approx(np.sqrt(60.0 * 120.0), abs=0.1)


def test_small_components_of_a_label_go_to_the_next_most_probable_label() -> None:
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[1:9, 1:9, 1:9] = SNFH
    labels[3:6, 3:6, 3:6] = NETC  # 27 mm³: kept at a minimum of 20
    labels[7, 7, 7] = NETC  # one voxel of NETC inside the oedema: relabelled
    labels[10:12, 10:12, 10:12] = NETC  # 8 mm³ away from the tumour: relabelled (its runner-up is background)
    probs = _probs_for(labels, runner_up=SNFH)
    probs[SNFH, 10:12, 10:12, 10:12] = 0.05
    probs[0, 10:12, 10:12, 10:12] = 0.3
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, {"NETC": 20.0, "ET": 20.0})
    out = out.numpy()
    assert lost == {"NETC": 2}  # ET is absent: nothing to count
    assert (out[3:6, 3:6, 3:6] == NETC).all()
    assert out[7, 7, 7] == SNFH and (out[10:12, 10:12, 10:12] == 0).all()
    np.testing.assert_array_equal(out[labels == SNFH], labels[labels == SNFH])
    kept, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, {"NETC": 0.0, "SNFH": 1.0})
    assert lost == {} and np.array_equal(kept.numpy(), labels)


def test_masks_without_small_components_shrink_with_the_limit() -> None:
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[0, 0, 0] = True  # 1 voxel
    mask[4:6, 4:6, 4:6] = True  # 8 voxels
    masks = without_small_components(mask, 1.0, limits=(0.0, 2.0, 9.0))
    assert [int(m.sum()) for m in masks] == [9, 8, 0]
    empty = np.zeros_like(mask)
    assert [int(m.sum()) for m in without_small_components(empty, 1.0)] == [0] * len(COMPONENT_CANDIDATES_MM3)


def test_component_minimum_is_the_smallest_best_limit_within_its_cap() -> None:
    limits = (0.0, 30.0, 60.0, 100.0)
    cases = [{"NETC": [0.5, 0.8, 0.8, 0.6], "ET": [0.9, 0.9, 0.8, 0.7]},
             {"NETC": [0.6, 0.9, 0.9, 0.9], "ET": [1.0, 1.0, 1.0, 0.5]}]
    fitted = fit_min_component_volumes(cases, limits=limits)
    assert fitted == {"NETC": 30.0}  # 30 and 60 tie: the smaller; ET is best with every component kept
    assert fit_min_component_volumes(cases, caps={"NETC": 10.0}, limits=limits) == {}
    assert fit_min_component_volumes([], limits=limits) == {}


def test_cavities_apart_from_the_tumour_become_background() -> None:
    labels = np.zeros((16, 16, 16), dtype=np.uint8)
    labels[2:8, 2:8, 2:8] = SNFH
    labels[4:6, 4:6, 4:6] = NETC
    labels[8:10, 3:6, 3:6] = RC  # touches the oedema across a face: the tumour's cavity, kept
    labels[12:15, 12:15, 12:15] = RC  # apart from the tumour: CSF taken for a cavity
    labels[0, 15, 15] = RC  # one voxel apart
    out, n = relabel_detached_cavities(torch.from_numpy(labels))
    out = out.numpy()
    assert n == 2
    assert (out[8:10, 3:6, 3:6] == RC).all()
    assert (out[12:15, 12:15, 12:15] == 0).all() and out[0, 15, 15] == 0
    np.testing.assert_array_equal(out[labels != RC], labels[labels != RC])
    # a diagonal contact counts (26-connectivity, as BraTS scoring connects lesions)
    diagonal = labels.copy()
    diagonal[11, 11, 11] = SNFH
    assert relabel_detached_cavities(torch.from_numpy(diagonal))[1] == 1  # only the single voxel goes


def test_a_cavity_without_any_tumour_is_kept() -> None:
    # after a gross-total resection nothing but the cavity is left
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[3:7, 3:7, 3:7] = RC
    out, n = relabel_detached_cavities(torch.from_numpy(labels))
    assert n == 0 and np.array_equal(out.numpy(), labels)


def test_small_components_never_go_to_an_excluded_label() -> None:
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:8, 1:8, 1:8] = SNFH
    labels[3:6, 3:6, 3:6] = NETC
    labels[9, 9, 9] = NETC  # a fragment: its runner-up is ET, which the case has suppressed
    probs = _probs_for(labels, runner_up=ET)
    probs[SNFH, 9, 9, 9] = 0.2
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, {"NETC": 5.0})
    assert lost == {"NETC": 1} and out[9, 9, 9] == ET
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, {"NETC": 5.0}, exclude=["ET"])
    assert lost == {"NETC": 1} and out[9, 9, 9] == SNFH
    assert (out.numpy()[3:6, 3:6, 3:6] == NETC).all()


def test_postprocessing_runs_the_component_minimums_again_after_a_suppression() -> None:
    labels = np.zeros((14, 14, 14), dtype=np.uint8)
    labels[1:9, 1:9, 1:9] = SNFH
    labels[3:7, 3:7, 3:7] = NETC  # 64 voxels: above the NETC minimum
    labels[11:13, 11:13, 11:13] = ET  # 8 voxels of ET apart, NETC its runner-up; ET is below its label minimum
    probs = _probs_for(labels, runner_up=NETC)
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, min_component_mm3={"NETC": 20.0},
                                   min_label_mm3={"ET": 1000.0})
    out = out.numpy()
    assert post["suppressed"] == ["ET"] and post["components_relabelled"] == {"NETC": 1}
    assert (out[11:13, 11:13, 11:13] == 0).all()  # not NETC (a fragment), not ET (suppressed): background
    assert (out[3:7, 3:7, 3:7] == NETC).all()
    assert post["min_component_volume_ml"] == {"NETC": 0.02} and post["min_label_volume_ml"] == {"ET": 1.0}
    # nothing to apply: nothing recorded, nothing changed
    same, nothing = postprocess_labels(probs, torch.from_numpy(labels), 1.0, detached_cavities=False)
    assert nothing == {} and np.array_equal(same.numpy(), labels)


def test_class_argmax_is_argmax_with_the_first_class_on_a_tie():
    torch.manual_seed(0)
    probs = torch.rand(5, 6, 7, 8).round(decimals=1)  # many ties
    assert torch.equal(class_argmax(probs), probs.argmax(0))
    tie = torch.zeros(5, 3, 3, 3)
    tie[2:4] = 0.5
    assert class_argmax(tie).unique().tolist() == [2]
    assert class_argmax(torch.zeros(5, 2, 2, 2)).unique().tolist() == [0]


def test_postprocessing_within_the_labelled_box_is_the_same_as_over_the_whole_volume() -> None:
    """The rules run on the bounding box of the labelled voxels: a map with a wide empty margin gives the same
    labels and record as the rules applied to every voxel."""
    from gliomics.inference.postprocess import _postprocess_labels

    labels = np.zeros((30, 28, 26), dtype=np.uint8)
    labels[8:16, 8:16, 8:16] = SNFH
    labels[10:14, 10:14, 10:14] = NETC
    labels[20:22, 20:22, 20:22] = ET  # apart, below both minimums
    labels[9:11, 22:25, 5:8] = RC  # a cavity apart from the tumour
    labels[15, 15, 15] = NETC  # a speck
    probs = _probs_for(labels, runner_up=NETC)
    settings = ({"NETC": 20.0}, {"ET": 1000.0}, True)
    boxed, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, min_component_mm3=settings[0],
                                     min_label_mm3=settings[1], detached_cavities=settings[2])
    whole, whole_post = _postprocess_labels(probs, torch.from_numpy(labels), 1.0, *settings)
    assert not np.array_equal(whole.numpy(), labels)  # the rules changed something
    assert np.array_equal(boxed.numpy(), whole.numpy()) and post == whole_post
    assert boxed.shape == labels.shape
    empty, _ = postprocess_labels(probs, torch.zeros_like(torch.from_numpy(labels)), 1.0, detached_cavities=True)
    assert not empty.any()


# ---- exact boundaries ------------------------------------------------------------------------------------------


def test_default_minimum_is_fifty_mm3_kept_at_exactly_fifty() -> None:
    """The default whole-tumour and cavity minimum is 50 mm³, a strict lower bound, applied per component."""
    seg = np.zeros((20, 20, 20), dtype=np.uint8)
    seg[1:11, 1:6, 1] = SNFH  # 50 voxels: kept
    seg[1:8, 1:8, 10] = ET  # 49 voxels: removed
    seg[12:17, 12:17, 12:14] = RC  # 50 voxels: kept
    seg[12:19, 12:19, 17] = RC  # 49 voxels: removed
    out = remove_small_components(seg, ISO)
    assert (out == SNFH).sum() == 50 and (out == ET).sum() == 0 and (out == RC).sum() == 50
    assert (out[12:17, 12:17, 12:14] == RC).all()


def test_sub_millimetre_limits_apply_to_small_voxels() -> None:
    """A limit below 1 mm³ still applies: a single 0.25 mm³ voxel goes at 0.5 mm³ and stays at 0.25 mm³."""
    seg = np.zeros((6, 6, 6), dtype=np.uint8)
    seg[1, 1, 1] = ET
    seg[4, 4, 4] = RC
    spacing = (0.5, 0.5, 1.0)
    assert not remove_small_components(seg, spacing, min_volume_mm3=0.5).any()
    np.testing.assert_array_equal(remove_small_components(seg, spacing, min_volume_mm3=0.25), seg)
    kept_rc = remove_small_components(seg, spacing, min_volume_mm3=0.5, min_rc_volume_mm3=0.0)
    assert kept_rc[4, 4, 4] == RC and kept_rc[1, 1, 1] == 0


def test_background_is_never_a_small_component() -> None:
    """When the background of a pass is smaller than the limit, the other labels are left alone."""
    seg = np.full((4, 4, 4), SNFH, dtype=np.uint8)
    seg[0, 0, 0:4] = RC  # 4 voxels of cavity: the WT pass's background is only 4 mm³
    out = remove_small_components(seg, ISO, min_volume_mm3=50.0, min_rc_volume_mm3=1.0)
    np.testing.assert_array_equal(out, seg)


def test_suppression_counts_the_label_over_the_whole_case_with_small_voxels() -> None:
    """A label's whole volume (all its components) is compared with the minimum, in mm³ of the given voxel size."""
    labels = np.zeros((4, 3, 3), dtype=np.uint8)
    labels[0, 0, 0] = labels[3, 2, 2] = ET  # two voxels apart: 2 × 0.5 = 1 mm³ of ET
    probs = _probs_for(labels, runner_up=SNFH)
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 0.5, {"ET": 1.0, "RC": 5.0})
    assert names == [] and torch.equal(out, torch.from_numpy(labels))
    out, names = suppress_small_labels(probs, torch.from_numpy(labels), 0.5, {"ET": 1.01, "RC": 5.0})
    assert names == ["ET"]
    assert out.dtype == torch.uint8 and out[0, 0, 0] == SNFH and out[3, 2, 2] == SNFH and (out == ET).sum() == 0


def test_fitted_minimum_is_rounded_to_a_tenth_of_a_mm3() -> None:
    """The minimum is the geometric mean of the last suppressed and next volumes, rounded to one decimal."""
    cases = [_case(RC=(100.0, 0.0, 0.0)), _case(RC=(1000.0, 900.0, 0.9))]
    assert fit_min_label_volumes(cases) == {"RC": 316.2}  # sqrt(100 000) = 316.23
    cases = [_case(ET=(30.0, 0.0, 0.0)), _case(ET=(60.0, 0.0, 0.0))]
    assert fit_min_label_volumes(cases) == {"ET": 84.9}  # sqrt(60 × 120) = 84.85


def test_fit_suppresses_a_one_mm3_false_positive() -> None:
    """Predicted volumes of 1 mm³ or less are candidates too; absent predictions (0 mm³) are not."""
    cases = [_case(ET=(1.0, 0.0, 0.0)), _case(ET=(0.0, 0.0, 1.0)), _case(ET=(400.0, 420.0, 0.9))]
    assert fit_min_label_volumes(cases) == {"ET": 20.0}  # sqrt(1 × 400)


def test_fit_cap_equal_to_a_false_positive_cannot_suppress_it() -> None:
    """Only predicted volumes strictly below the cap may be suppressed."""
    cases = [_case(SNFH=(700.0, 0.0, 0.0)), _case(SNFH=(3000.0, 2800.0, 0.8))]
    assert fit_min_label_volumes(cases, {"SNFH": 700.0}) == {}
    assert fit_min_label_volumes(cases, {"SNFH": 700.1}) == {"SNFH": 700.1}


def test_fit_ignores_a_gain_below_one_in_a_billion() -> None:
    """A suppression must raise the mean Dice by more than 1e-9 to be chosen."""
    cases = [_case(NETC=(10.0, 0.0, 1.0 - 1e-10)), _case(NETC=(500.0, 450.0, 0.9))]
    assert fit_min_label_volumes(cases) == {}
    cases = [_case(NETC=(10.0, 0.0, 1.0 - 1e-7)), _case(NETC=(500.0, 450.0, 0.9))]
    assert fit_min_label_volumes(cases) == {"NETC": 70.7}  # sqrt(10 × 500)


def test_fit_picks_the_next_predicted_volume_among_several() -> None:
    """With more predicted volumes above the suppressed one, the next one (not a later one) sets the minimum."""
    cases = [_case(ET=(20.0, 0.0, 0.0)), _case(ET=(80.0, 90.0, 0.9)), _case(ET=(500.0, 510.0, 0.9)),
             _case(ET=(2000.0, 1900.0, 0.9))]
    assert fit_min_label_volumes(cases) == {"ET": 40.0}


def test_small_component_limits_below_one_mm3_and_with_small_voxels() -> None:
    """A single 0.5 mm³ voxel is below a 1 mm³ minimum; two such voxels together are not."""
    labels = np.zeros((6, 6, 6), dtype=np.uint8)
    labels[1, 1, 1] = NETC
    labels[4, 4, 4] = labels[5, 5, 5] = NETC  # diagonal pair: one component of 1 mm³
    probs = _probs_for(labels, runner_up=SNFH)
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 0.5, {"NETC": 1.0})
    assert lost == {"NETC": 1} and out[1, 1, 1] == SNFH and out[4, 4, 4] == NETC and out[5, 5, 5] == NETC
    assert out.dtype == torch.uint8


def test_small_components_do_not_count_the_background() -> None:
    """A label filling almost the whole map leaves a background smaller than the minimum: it is not a component."""
    labels = np.full((3, 3, 3), SNFH, dtype=np.uint8)
    labels[0, 0, 0] = NETC
    probs = _probs_for(labels, runner_up=0)
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, {"SNFH": 5.0, "NETC": 2.0})
    assert lost == {"NETC": 1}
    assert out[0, 0, 0] == 0 and (out.numpy().ravel()[1:] == SNFH).all()


def test_masks_keep_components_exactly_at_the_limit() -> None:
    """A component whose volume equals the limit is kept."""
    mask = np.zeros((10, 10, 10), dtype=bool)
    mask[0, 0, 0] = True
    mask[4:6, 4:6, 4:6] = True
    masks = without_small_components(mask, 0.5, limits=(0.5, 4.0, 4.5))
    assert [int(m.sum()) for m in masks] == [9, 8, 0]
    assert all(m.dtype == bool for m in masks)


def test_component_minimum_cap_is_inclusive() -> None:
    """A cap equal to a candidate limit allows that limit."""
    limits = (0.0, 30.0, 60.0)
    cases = [{"ET": [0.5, 0.7, 0.9]}]
    assert fit_min_component_volumes(cases, limits=limits) == {"ET": 60.0}
    assert fit_min_component_volumes(cases, caps={"ET": 30.0}, limits=limits) == {"ET": 30.0}
    assert fit_min_component_volumes(cases, caps={"ET": 29.9}, limits=limits) == {}
    fitted = fit_min_component_volumes([{"RC": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}])
    assert fitted == {"RC": 630.0} and isinstance(fitted["RC"], float)


def test_component_minimum_ignores_differences_below_rounding() -> None:
    """Mean Dice values equal to 9 decimals tie, and the smaller limit wins."""
    limits = (0.0, 30.0)
    assert fit_min_component_volumes([{"NETC": [0.5, 0.5 + 3e-10]}], limits=limits) == {}
    assert fit_min_component_volumes([{"NETC": [0.5, 0.5 + 1e-8]}], limits=limits) == {"NETC": 30.0}


def test_a_cavity_in_two_corner_touching_parts_is_one_component() -> None:
    """Cavity components are 26-connected: the far half of a cavity touching the tumour only through its near half
    (at a corner) is kept with it."""
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = SNFH
    labels[4:6, 1:3, 1:3] = RC  # touches the oedema across a face
    labels[6:8, 3:5, 3:5] = RC  # touches the first part of the cavity at a corner only
    out, n = relabel_detached_cavities(torch.from_numpy(labels))
    assert n == 0 and torch.equal(out, torch.from_numpy(labels))


def test_several_detached_cavities_are_each_counted() -> None:
    """Each cavity component apart from the tumour counts once, whatever its order in the scan."""
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[0, 0, 0] = RC  # first component in scan order, detached
    labels[5:8, 5:8, 5:8] = ET
    labels[8, 5:8, 5:8] = RC  # attached
    labels[11, 11, 11] = RC  # last, detached
    out, n = relabel_detached_cavities(torch.from_numpy(labels))
    assert n == 2
    assert out[0, 0, 0] == 0 and out[11, 11, 11] == 0 and (out[8, 5:8, 5:8] == RC).all()


def test_postprocessing_records_every_step_with_rounded_volumes() -> None:
    """Component minimums in both passes, a detached cavity and a suppression: the labels and the full record."""
    labels = np.zeros((16, 16, 16), dtype=np.uint8)
    labels[1:9, 1:9, 1:9] = SNFH
    labels[3:7, 3:7, 3:7] = NETC  # 64 voxels
    labels[8, 8, 8] = NETC  # a one-voxel fragment: lost in the first pass
    labels[12:14, 12:14, 12:14] = ET  # 8 voxels of ET apart: suppressed; becomes a NETC fragment, lost again
    labels[0, 15, 15] = RC  # a cavity apart from the tumour
    probs = _probs_for(labels, runner_up=NETC)
    probs[SNFH, 8, 8, 8] = 0.3
    probs[NETC, 8, 8, 8] = 0.05  # the first fragment's runner-up is SNFH
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, min_component_mm3={"NETC": 12.345},
                                   min_label_mm3={"ET": 1234.5678})
    out = out.numpy()
    assert post == {"detached_cavities_relabelled": 1, "min_label_volume_ml": {"ET": 1.2346}, "suppressed": ["ET"],
                    "min_component_volume_ml": {"NETC": 0.0123}, "components_relabelled": {"NETC": 2}}
    assert out[8, 8, 8] == SNFH and out[0, 15, 15] == 0 and (out[12:14, 12:14, 12:14] == 0).all()
    assert (out[3:7, 3:7, 3:7] == NETC).all() and out.shape == labels.shape


def test_postprocessing_sums_the_losses_of_both_passes_per_label() -> None:
    """A label losing components only in the first pass keeps its count beside one that loses only in the second."""
    labels = np.zeros((16, 16, 16), dtype=np.uint8)
    labels[1:9, 1:9, 1:9] = SNFH
    labels[3:7, 3:7, 3:7] = NETC
    labels[12:14, 12:14, 12:14] = ET  # suppressed; its runner-up NETC makes an 8-voxel NETC fragment
    labels[15, 0, 0] = SNFH  # one SNFH voxel apart: lost in the first pass, to the background
    probs = _probs_for(labels, runner_up=NETC)
    probs[NETC, 15, 0, 0], probs[0, 15, 0, 0] = 0.05, 0.3
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, min_component_mm3={"NETC": 20.0, "SNFH": 2.0},
                                   min_label_mm3={"ET": 100.0}, detached_cavities=False)
    assert post["components_relabelled"] == {"NETC": 1, "SNFH": 1}
    assert list(post["components_relabelled"]) == ["NETC", "SNFH"]
    assert out[15, 0, 0] == 0 and (out[12:14, 12:14, 12:14] == 0).all()


def test_label_minimums_alone_suppress_without_component_passes() -> None:
    """Without component minimums, a suppression is recorded and no component record is written."""
    labels = np.zeros((8, 8, 8), dtype=np.uint8)
    labels[1:7, 1:7, 1:7] = SNFH
    labels[3:5, 3:5, 3:5] = ET
    probs = _probs_for(labels, runner_up=SNFH)
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 2.0, min_label_mm3={"ET": 20.0})
    assert post == {"min_label_volume_ml": {"ET": 0.02}, "suppressed": ["ET"]}
    assert (out.numpy() == SNFH).sum() == 216
    kept, post = postprocess_labels(probs, torch.from_numpy(labels), 2.0, min_label_mm3={"ET": 16.0})
    assert post == {"min_label_volume_ml": {"ET": 0.016}, "suppressed": []} and torch.equal(kept,
                                                                                           torch.from_numpy(labels))


def test_detached_cavities_are_relabelled_by_default_and_kept_on_request() -> None:
    """``detached_cavities`` defaults to True; the record counts the cavities relabelled."""
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = NETC  # necrosis only: label 1, the lowest tumour label
    labels[8:10, 8:10, 8:10] = RC
    probs = _probs_for(labels, runner_up=0)
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0)
    assert post == {"detached_cavities_relabelled": 1} and not (out == RC).any()
    assert (out.numpy()[1:4, 1:4, 1:4] == NETC).all()
    same, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, detached_cavities=False)
    assert post == {} and torch.equal(same, torch.from_numpy(labels))


def test_postprocessing_keeps_labels_at_the_edge_of_the_labelled_box() -> None:
    """Every labelled voxel, NETC (label 1) at a corner included, lies in the box the rules run on."""
    labels = np.zeros((12, 12, 12), dtype=np.uint8)
    labels[0:2, 0:2, 0:2] = NETC
    labels[5:11, 5:11, 5:11] = SNFH
    probs = _probs_for(labels, runner_up=0)
    out, post = postprocess_labels(probs, torch.from_numpy(labels), 1.0, min_component_mm3={"NETC": 8.0})
    assert torch.equal(out, torch.from_numpy(labels))
    assert post == {"min_component_volume_ml": {"NETC": 0.008}, "components_relabelled": {}}


def test_cavity_pass_runs_when_the_tumour_pass_is_off() -> None:
    """A disabled tumour minimum (0) or an absent tumour does not stop the cavity pass."""
    seg = np.zeros((8, 8, 8), dtype=np.uint8)
    seg[0, 0, 0] = ET
    seg[6:8, 6:8, 6:8] = RC  # 8 mm³
    out = remove_small_components(seg, ISO, min_volume_mm3=0.0, min_rc_volume_mm3=9.0)
    assert out[0, 0, 0] == ET and not (out == RC).any()
    seg[0, 0, 0] = 0
    assert not remove_small_components(seg, ISO, min_volume_mm3=9.0).any()


def test_each_named_label_is_checked_after_one_with_nothing_to_do() -> None:
    """A label that is absent, disabled or has no small component does not stop the labels named after it."""
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:6, 1:6, 1:6] = SNFH
    labels[8, 8, 8] = NETC
    probs = _probs_for(labels, runner_up=0)
    limits = {"ET": 5.0, "RC": 0.0, "SNFH": 5.0, "NETC": 5.0}  # ET absent, RC off, SNFH large
    out, lost = relabel_small_components(probs, torch.from_numpy(labels), 1.0, limits)
    assert lost == {"NETC": 1} and out[8, 8, 8] == 0


def test_component_minimum_below_one_mm3_is_kept() -> None:
    """A best limit between 0 and 1 mm³ is still a minimum."""
    assert fit_min_component_volumes([{"ET": [0.5, 0.9]}], limits=(0.0, 0.5)) == {"ET": 0.5}


def test_the_rules_see_only_the_box_of_the_labelled_voxels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules get the labels and probabilities inside the bounding box of the labelled voxels (label 1 included)."""
    import gliomics.inference.postprocess as postprocess

    seen = []
    original = postprocess.relabel_detached_cavities

    def spy(labels):
        seen.append(tuple(labels.shape))
        return original(labels)

    monkeypatch.setattr(postprocess, "relabel_detached_cavities", spy)
    labels = np.zeros((20, 18, 16), dtype=np.uint8)
    labels[3, 4, 5] = NETC
    labels[9:12, 10:14, 6:8] = SNFH
    out, post = postprocess_labels(_probs_for(labels, runner_up=0), torch.from_numpy(labels), 1.0)
    assert seen == [(9, 10, 3)] and post == {} and torch.equal(out, torch.from_numpy(labels))
    seen.clear()
    empty = np.zeros((5, 6, 7), dtype=np.uint8)
    postprocess_labels(_probs_for(empty, runner_up=0), torch.from_numpy(empty), 1.0)
    assert seen == [(5, 6, 7)]


def test_an_empty_label_map_still_gets_its_record() -> None:
    """With nothing labelled the rules run on the whole map, change nothing and record the settings in mL."""
    empty = np.zeros((4, 5, 6), dtype=np.uint8)
    out, post = postprocess_labels(_probs_for(empty, runner_up=0), torch.from_numpy(empty), 2.0,
                                   min_component_mm3={"NETC": 1500.0}, min_label_mm3={"ET": 3000.0})
    assert not out.any() and out.shape == (4, 5, 6)
    assert post == {"min_label_volume_ml": {"ET": 3.0}, "suppressed": [], "min_component_volume_ml": {"NETC": 1.5},
                    "components_relabelled": {}}
