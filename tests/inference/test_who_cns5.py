"""The WHO CNS5 suggestion: every marker combination, the category probabilities and the indeterminate band."""

from __future__ import annotations

import itertools
import math

import pytest

from gliomics.inference.who import CATEGORIES, INDETERMINATE, WHO_CAVEAT, who_cns5_suggestion

HIGH, LOW = 0.9, 0.2  # far from the 0.5 threshold, outside the default band


def _expected(idh: bool, codel: bool, tert: bool) -> str:
    if idh:
        return "oligodendroglioma" if codel else "astrocytoma"
    return "glioblastoma" if tert else "idh_wildtype_other"


@pytest.mark.parametrize("idh,codel,tert", list(itertools.product([True, False], repeat=3)))
def test_every_marker_combination_gives_its_category(idh, codel, tert):
    p = {"idh": HIGH if idh else LOW, "codel_1p19q": HIGH if codel else LOW, "tert": HIGH if tert else LOW}
    res = who_cns5_suggestion(p)
    key = _expected(idh, codel, tert)
    assert res["key"] == key
    assert res["category"] == CATEGORIES[key]
    assert res["candidates"] == [CATEGORIES[key]]
    assert res["uncertain_markers"] == []
    probs = res["category_probabilities"]
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-3)
    assert res["probability"] == probs[CATEGORIES[key]]
    assert res["caveat"] == WHO_CAVEAT and "not a diagnosis" in res["caveat"] and "independent" in res["caveat"]
    assert "independent" in res["assumption"]


def test_category_names_are_the_who_cns5_ones():
    assert who_cns5_suggestion({"idh": 0.9, "codel_1p19q": 0.9, "tert": 0.1})["category"] == \
        "Oligodendroglioma, IDH-mutant and 1p/19q-codeleted"
    assert who_cns5_suggestion({"idh": 0.9, "codel_1p19q": 0.1, "tert": 0.9})["category"] == "Astrocytoma, IDH-mutant"
    assert who_cns5_suggestion({"idh": 0.1, "codel_1p19q": 0.9, "tert": 0.9})["category"] == \
        "Glioblastoma, IDH-wildtype (molecular criterion)"
    assert who_cns5_suggestion({"idh": 0.1, "codel_1p19q": 0.9, "tert": 0.1})["category"] == \
        "IDH-wildtype diffuse glioma, further testing needed (EGFR, +7/−10)"


def test_probabilities_multiply_as_if_independent():
    res = who_cns5_suggestion({"idh": 0.8, "codel_1p19q": 0.3, "tert": 0.7})
    probs = res["category_probabilities"]
    assert probs[CATEGORIES["oligodendroglioma"]] == pytest.approx(0.8 * 0.3, abs=1e-4)
    assert probs[CATEGORIES["astrocytoma"]] == pytest.approx(0.8 * 0.7, abs=1e-4)
    assert probs[CATEGORIES["glioblastoma"]] == pytest.approx(0.2 * 0.7, abs=1e-4)
    assert probs[CATEGORIES["idh_wildtype_other"]] == pytest.approx(0.2 * 0.3, abs=1e-4)
    assert res["key"] == "astrocytoma" and res["probability"] == pytest.approx(0.56, abs=1e-4)


def test_markers_outside_the_branch_are_ignored():
    """1p/19q does not matter once IDH is wildtype, nor TERT once IDH is mutant, even inside the band."""
    assert who_cns5_suggestion({"idh": 0.1, "codel_1p19q": 0.5, "tert": 0.9})["key"] == "glioblastoma"
    assert who_cns5_suggestion({"idh": 0.9, "codel_1p19q": 0.1, "tert": 0.5})["key"] == "astrocytoma"


@pytest.mark.parametrize("p_idh", [0.45, 0.5, 0.55, 0.59])
def test_idh_inside_the_band_is_indeterminate(p_idh):
    res = who_cns5_suggestion({"idh": p_idh, "codel_1p19q": 0.9, "tert": 0.1})
    assert res["category"] == INDETERMINATE and res["key"] == "indeterminate"
    assert res["uncertain_markers"] == ["idh"]
    assert res["candidates"] == [CATEGORIES["oligodendroglioma"], CATEGORIES["idh_wildtype_other"]]
    best = max(res["candidates"], key=lambda c: res["category_probabilities"][c])
    assert res["most_probable_candidate"] == best
    assert res["probability"] == res["category_probabilities"][best]
    assert "IDH" in res["reason"]


def test_needed_second_marker_inside_the_band_is_indeterminate():
    res = who_cns5_suggestion({"idh": 0.9, "codel_1p19q": 0.55, "tert": 0.1})
    assert res["category"] == INDETERMINATE
    assert res["uncertain_markers"] == ["codel_1p19q"]
    assert res["candidates"] == [CATEGORIES["oligodendroglioma"], CATEGORIES["astrocytoma"]]
    res = who_cns5_suggestion({"idh": 0.1, "codel_1p19q": 0.9, "tert": 0.42})
    assert res["uncertain_markers"] == ["tert"]
    assert res["candidates"] == [CATEGORIES["glioblastoma"], CATEGORIES["idh_wildtype_other"]]


def test_all_uncertain_lists_all_four_candidates():
    res = who_cns5_suggestion({"idh": 0.5, "codel_1p19q": 0.5, "tert": 0.5})
    assert res["uncertain_markers"] == ["idh", "codel_1p19q", "tert"]
    assert res["candidates"] == list(CATEGORIES.values())


def test_band_is_configurable_and_follows_the_thresholds():
    p = {"idh": 0.65, "codel_1p19q": 0.9, "tert": 0.1}
    assert who_cns5_suggestion(p)["key"] == "oligodendroglioma"
    assert who_cns5_suggestion(p, band=0.2)["key"] == "indeterminate"
    assert who_cns5_suggestion(p, band=0.0)["key"] == "oligodendroglioma"
    # with IDH's threshold at 0.7, p = 0.65 is IDH-wildtype, and inside the default band
    res = who_cns5_suggestion(p, {"idh": 0.7})
    assert res["key"] == "indeterminate" and res["thresholds"]["idh"] == 0.7
    assert who_cns5_suggestion(p, {"idh": 0.9})["key"] == "idh_wildtype_other"
    # the band is open: exactly band away from the threshold decides (0.25 and 0.5 are exact in binary)
    assert who_cns5_suggestion({"idh": 0.75, "codel_1p19q": 0.0, "tert": 0.0}, band=0.25)["key"] == "astrocytoma"
    # p == threshold is the altered call, as the predictor's (with no band)
    assert who_cns5_suggestion({"idh": 0.5, "codel_1p19q": 0.5, "tert": 0.0}, band=0.0)["key"] == "oligodendroglioma"


@pytest.mark.parametrize("bad", [{"idh": 0.9, "codel_1p19q": 0.1}, {"idh": 1.5, "codel_1p19q": 0.1, "tert": 0.1},
                                 {"idh": math.nan, "codel_1p19q": 0.1, "tert": 0.1},
                                 {"idh": "high", "codel_1p19q": 0.1, "tert": 0.1}])
def test_bad_probabilities_are_refused(bad):
    with pytest.raises(ValueError):
        who_cns5_suggestion(bad)


def test_bad_band_is_refused():
    with pytest.raises(ValueError, match="band"):
        who_cns5_suggestion({"idh": 0.9, "codel_1p19q": 0.1, "tert": 0.1}, band=-0.1)


def test_an_undetermined_conformal_set_makes_a_needed_marker_uncertain():
    far = {"idh": 0.95, "codel_1p19q": 0.9, "tert": 0.1}
    assert who_cns5_suggestion(far)["key"] == "oligodendroglioma"
    out = who_cns5_suggestion(far, undetermined=["codel_1p19q"])
    assert out["key"] == "indeterminate" and out["uncertain_markers"] == ["codel_1p19q"]
    assert "conformal prediction set" in out["reason"]
    # a marker the branch does not need changes nothing
    assert who_cns5_suggestion(far, undetermined=["tert"])["key"] == "oligodendroglioma"
