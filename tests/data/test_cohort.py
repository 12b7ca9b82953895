"""Cohorts: patient ids from case ids, joining the markers table, marker prevalence."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from gliomics.constants import MARKERS
from gliomics.data.cohort import CohortCase, build_cohort, marker_prevalence, patient_id
from gliomics.errors import MarkerTableError
from gliomics.io import Case, MarkerRecord, write_markers
from gliomics_testing import make_brats_case

CASE_IDS = ("BraTS-GLI-00001-000", "BraTS-GLI-00001-100", "BraTS-GLI-00002-000")


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    root = tmp_path / "brats"
    for seed, case_id in enumerate(CASE_IDS):
        make_brats_case(root, case_id, shape=(6, 6, 4), seed=seed, with_seg=False)
    return root


def _fake_case(case_id: str) -> Case:
    return Case(case_id, images={"t1c": Path(f"/nowhere/{case_id}-t1c.nii.gz")})


# ---------------------------------------------------------------- patient_id


@pytest.mark.parametrize(
    ("case_id", "patient"),
    [
        ("BraTS-GLI-00001-000", "BraTS-GLI-00001"),
        ("BraTS-GLI-00001-100", "BraTS-GLI-00001"),
        ("PHANTOM-A-00001-101", "PHANTOM-A-00001"),
        ("CASE-1234", "CASE-1234"),  # four digits is not a time point
        ("CASE-12", "CASE-12"),  # two digits neither
        ("case000", "case000"),  # no separator
        ("000", "000"),  # nothing before the time point
    ],
)
def test_patient_id(case_id: str, patient: str) -> None:
    assert patient_id(case_id) == patient


def test_time_points_share_a_patient() -> None:
    a, b, c = (CohortCase(_fake_case(cid), None) for cid in CASE_IDS)
    assert a.patient == b.patient != c.patient
    assert a.case_id == CASE_IDS[0]


# ---------------------------------------------------------------- CohortCase


def test_marker_vector_order_and_unknowns() -> None:
    record = MarkerRecord("X-00001-000", idh=1, codel_1p19q=None, tert=0, site="A")
    case = CohortCase(_fake_case("X-00001-000"), record)
    vec = case.marker_vector()
    assert vec.dtype == np.float32 and vec.shape == (len(MARKERS),)
    expected = {"idh": 1.0, "codel_1p19q": np.nan, "tert": 0.0}
    np.testing.assert_array_equal(vec, np.array([expected[m] for m in MARKERS], dtype=np.float32))
    assert case.site == "A"


def test_case_without_record_is_all_unknown() -> None:
    case = CohortCase(_fake_case("X-00001-000"), None)
    assert np.isnan(case.marker_vector()).all()
    assert case.site is None


# ---------------------------------------------------------------- build_cohort


def test_build_cohort_without_markers(cohort_dir: Path) -> None:
    cohort = build_cohort(cohort_dir)
    assert [c.case_id for c in cohort] == sorted(CASE_IDS)
    assert all(c.markers is None for c in cohort)


def test_build_cohort_joins_markers(cohort_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [
        MarkerRecord(CASE_IDS[0], idh=1, codel_1p19q=1, tert=None, age=41.0, sex="F", site="A"),
        MarkerRecord(CASE_IDS[2], idh=0, codel_1p19q=0, tert=1, site="B"),
    ]
    table = write_markers(records, tmp_path / "markers.csv")
    with caplog.at_level(logging.WARNING, logger="gliomics.data.cohort"):
        cohort = build_cohort(cohort_dir, table)
    by_id = {c.case_id: c for c in cohort}
    assert set(by_id) == set(CASE_IDS)
    assert by_id[CASE_IDS[0]].markers == records[0]
    assert by_id[CASE_IDS[0]].site == "A"
    assert by_id[CASE_IDS[2]].site == "B"
    # the second time point has no row: its markers are unknown, not copied from the first time point
    assert by_id[CASE_IDS[1]].markers is None
    assert np.isnan(by_id[CASE_IDS[1]].marker_vector()).all()
    assert any("no row" in r.getMessage() for r in caplog.records)


def test_build_cohort_hand_written_csv_with_extra_row(cohort_dir: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    table = tmp_path / "markers.csv"
    table.write_text(
        "case_id,idh,codel_1p19q,tert,site\n"
        f"{CASE_IDS[0]},mutant,codeleted,,A\n"
        f"{CASE_IDS[1]},1,1,0,A\n"
        f"{CASE_IDS[2]},wildtype,intact,mutant,B\n"
        "BraTS-GLI-09999-000,0,0,0,C\n"
    )
    with caplog.at_level(logging.WARNING, logger="gliomics.data.cohort"):
        cohort = build_cohort(cohort_dir, table)
    assert len(cohort) == len(CASE_IDS)
    vectors = {c.case_id: c.marker_vector() for c in cohort}
    idh = MARKERS.index("idh")
    assert vectors[CASE_IDS[0]][idh] == 1 and vectors[CASE_IDS[2]][idh] == 0
    assert np.isnan(vectors[CASE_IDS[0]][MARKERS.index("tert")])
    assert any("match no case" in r.getMessage() for r in caplog.records)


def test_build_cohort_no_matching_id_names_the_file(cohort_dir: Path, tmp_path: Path) -> None:
    table = write_markers([MarkerRecord("OTHER-00001-000", 1, 0, 0), MarkerRecord("OTHER-00002-000", 0, 0, 0)],
                          tmp_path / "wrong_markers.csv")
    with pytest.raises(MarkerTableError, match=re.escape(str(table))) as info:
        build_cohort(cohort_dir, table)
    assert "OTHER-00001-000" in str(info.value)


def test_build_cohort_missing_table_raises(cohort_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(MarkerTableError, match="not found"):
        build_cohort(cohort_dir, tmp_path / "absent.csv")


# ---------------------------------------------------------------- marker_prevalence


def test_marker_prevalence_ignores_unknown() -> None:
    cohort = [
        CohortCase(_fake_case("X-00001-000"), MarkerRecord("X-00001-000", idh=1, codel_1p19q=None, tert=0)),
        CohortCase(_fake_case("X-00002-000"), MarkerRecord("X-00002-000", idh=0, codel_1p19q=None, tert=1)),
        CohortCase(_fake_case("X-00003-000"), MarkerRecord("X-00003-000", idh=1, codel_1p19q=None, tert=None)),
        CohortCase(_fake_case("X-00004-000"), None),
    ]
    prevalence = marker_prevalence(cohort)
    assert set(prevalence) == set(MARKERS)
    assert prevalence["idh"] == pytest.approx(2 / 3)
    assert prevalence["tert"] == pytest.approx(1 / 2)
    assert prevalence["codel_1p19q"] is None


def test_marker_prevalence_of_empty_cohort() -> None:
    assert marker_prevalence([]) == dict.fromkeys(MARKERS)


def test_median_spacing_is_per_ras_axis(tmp_path: Path):
    from gliomics.data.cohort import median_spacing
    from gliomics_testing import DEFAULT_AFFINE

    swapped = DEFAULT_AFFINE[:, [2, 0, 1, 3]]  # voxel axis 0 is now the 1.5 mm S axis
    cases = []
    for k, affine in enumerate((DEFAULT_AFFINE, DEFAULT_AFFINE, swapped)):
        folder = make_brats_case(tmp_path, f"C-{k}", shape=(6, 6, 4), affine=affine, with_seg=False)
        cases.append(Case(f"C-{k}", images={"t1c": folder / f"C-{k}-t1c.nii.gz"}))
    assert median_spacing(cases) == [1.0, 1.0, 1.5]
    assert median_spacing([cases[2]]) == [1.0, 1.0, 1.5]


def test_lesion_volume_quantiles_read_the_segmentations(tmp_path: Path) -> None:
    from gliomics.constants import LABELS
    from gliomics.data.cohort import lesion_volume_quantiles
    from gliomics.io import save_image

    cases = []
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 mm³ voxels
    for k, et_voxels in enumerate((10, 20, 30, 0)):
        seg = np.zeros((8, 8, 8), dtype=np.uint8)
        seg.reshape(-1)[:et_voxels] = LABELS["ET"]
        seg[7, 7, 7] = LABELS["SNFH"]
        path = save_image(seg, affine, tmp_path / f"c{k}_seg.nii.gz", dtype=np.uint8)
        cases.append(CohortCase(Case(f"c{k}", {}, seg=path), None))
    cases.append(CohortCase(Case("no-seg", {}), None))
    q = lesion_volume_quantiles(cases, 0.5)
    assert q == {"ET": pytest.approx(160.0), "SNFH": pytest.approx(8.0)}  # median of 80, 160, 240; NETC/RC absent
    assert lesion_volume_quantiles(cases, 0.0, max_cases=2) == {"ET": pytest.approx(80.0), "SNFH": pytest.approx(8.0)}
