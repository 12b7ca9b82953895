"""Which DICOM series holds which sequence: the evidence of each series (image type, parameters, names, contrast),
the order rule checked against the images, and the choice per sequence (ties, overrides, resolution, orientation)."""

from __future__ import annotations

import logging
import math
import re

import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

from dicom_testing import (
    SeriesSpec,
    canon_study,
    flair_contrast_study,
    ge_study,
    head_volume,
    philips_study,
    siemens_study,
    write_specs,
)
from gliomics.errors import ConfigError, InputError
from gliomics.io.dicom import Series, SeriesHeader, read_series, scan_series
from gliomics.io.dicom_evidence import apply_order_rules, enhancement_index, name_kind, parameter_kind, weigh_series
from gliomics.io.dicom_sequences import RESOLUTION_TOLERANCE, decision_lines, select_series


def _series(number: int, description: str, *, tr: float | None = None, te: float | None = None,
            ti: float | None = None, flip: float | None = None, seq: str = "", image_type: str = "ORIGINAL\\PRIMARY",
            contrast: dict[str, str] | None = None, private: str | None = None, time: float | None = None,
            spacing: tuple[float, float, float] = (0.9, 0.9, 5.0), normal: tuple[float, float, float] = (0, 0, 1),
            protocol: str = "", sequence_name: str = "", b_value: float | None = None,
            problem: str | None = None, uid: str | None = None) -> Series:
    """A series in memory (no files): what :func:`scan_series` would have found."""
    header = SeriesHeader(
        protocol=protocol, sequence_name=sequence_name, tr=tr, te=te, ti=ti, flip=flip,
        scanning_sequence=[s for s in seq.split("\\") if s], image_type=image_type.split("\\"), b_value=b_value,
        contrast=contrast or {}, private_contrast=private, acquired=None if time is None else f"20240101 t{time:g}",
        acquired_s=time)
    return Series(uid or f"1.2.826.0.1.{number}", "1.2.826.0.1", description, number, problem=problem, rows=16,
                  columns=16, slices=8, header=header, spacing=spacing, normal=normal)


def _t1(number: int, description: str = "Ax T1", **kwargs) -> Series:
    return _series(number, description, tr=500, te=10, flip=90, seq="SE", **kwargs)


def _t2(number: int, description: str = "Ax T2 FSE", **kwargs) -> Series:
    return _series(number, description, tr=4000, te=100, flip=90, seq="SE", **kwargs)


def _flair(number: int, description: str = "Ax T2 FLAIR", **kwargs) -> Series:
    return _series(number, description, tr=9000, te=140, ti=2250, flip=90, seq="SE\\IR", **kwargs)


def _chosen(selection) -> dict[str, int | None]:
    return {k: s.number for k, s in selection.chosen.items()}


# --- The evidence of one series ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tr", "te", "ti", "seq", "flip", "b_value", "expected"), [
    (500, 10, None, "SE", 90, None, "t1"),  # GE Ax T1 (+C)
    (600, 12, None, "SE", 90, None, "t1"),  # Siemens t1_se_tra
    (626, 15, None, "SE", 69, None, "t1"),  # Philips T1W_SE-TRA_FS
    (2000, 10, 800, "SE\\IR", 90, None, "t1"),  # GE Ax T1 FLAIR: inversion-prepared T1
    (8, 3, 450, "GR", 12, None, "t1"),  # GE BRAVO
    (2300, 3, 900, "GR\\IR", 8, None, "t1"),  # Siemens MPRAGE
    (8.1, 3.7, None, "GR", 8, None, "t1"),  # Philips 3D TFE
    (250, 2.5, None, "GR", 70, None, "t1"),  # 2D FLASH T1
    (4000, 100, None, "SE", 90, None, "t2"),  # GE Ax T2 FSE
    (5227, 100, None, "SE", 90, None, "t2"),  # Philips T2W_TSE_TRA
    (3594, 88, None, "SE", 90, None, "t2"),  # Philips spin-echo DWI: its parameters alone look like a T2
    (9000, 140, 2250, "SE\\IR", 90, None, "flair"),  # GE Ax T2 FLAIR
    (6000, 120, 2000, "IR", 90, None, "flair"),  # Philips T2W_FLAIR_TRA
    (9000, 90, 2500, "SE\\IR", 150, None, "flair"),  # Siemens TIRM dark-fluid
    (5000, 388, 1800, "SE\\IR", 120, None, "flair"),  # 3D SPACE FLAIR
    (6000, 80, None, "EP\\SE", 90, 1000, "other"),  # GE DWI
    (5800, 90, None, "EP", 90, None, "other"),  # Siemens ep2d_diff
    (3500, 90, None, "SE", 90, 1000, "other"),  # a b-value without EP
    (600, 20, None, "GR", 20, None, "other"),  # T2* gradient echo
    (3000, 20, None, "SE", 90, None, "other"),  # proton density
    (4000, 50, 150, "SE\\IR", 90, None, None),  # STIR: none of the four, the parameters do not claim it
    (1500, 50, None, "SE", 90, None, None),  # intermediate weighting
    (None, None, None, "", None, None, None),  # no parameters
    (500, None, None, "SE", 90, None, None),  # TE missing
])
def test_parameter_kind_reads_the_acquisition_parameters(tr, te, ti, seq, flip, b_value, expected):
    kind, why = parameter_kind(_series(1, "x", tr=tr, te=te, ti=ti, flip=flip, seq=seq, b_value=b_value))
    assert kind == expected, why
    assert why


@pytest.mark.parametrize(("description", "expected"), [
    # the descriptions the old name patterns handled, with the new expectations
    ("AX T1 POST GD", "t1"), ("T1_MPRAGE_GD", "t1"), ("sag t1 +C", "t1"), ("T1 SE contrast", "t1"),
    ("AX T1 PRE", "t1"), ("T1 MPRAGE", "t1"), ("T1 pre-contrast", "t1"), ("AX T1 FLAIR", "t1"),
    ("Ax T2 FLAIR", "flair"), ("FLAIR 3D", "flair"), ("AX T2 FSE", "t2"), ("t2_tse_tra", "t2"),
    ("T2* GRE", "other"), ("Localizer", "other"), ("DWI b1000", "other"),
    # GE
    ("3-Plane Loc", "other"), ("ASSET cal", "other"), ("Ax DWI", "other"), ("Ax T1 +C", "t1"),
    ("Sag 3D T1 BRAVO +C", "t1"), ("Cor T1 +C MPR", "other"), ("Ax FSPGR BRAVO", "t1"), ("Ax T2 FRFSE", "t2"),
    ("Ax T2 PROPELLER", "t2"), ("Ax SWAN", "other"), ("Ax T1 FLAIR +C", "t1"),
    # Siemens
    ("localizer", "other"), ("AAHead_Scout_64ch-head-coil", "other"), ("t1_se_tra", "t1"), ("t1_se_tra_KM", "t1"),
    ("t2_tirm_tra_dark-fluid", "flair"), ("t1_tirm_tra", "t1"), ("ep2d_diff_3scan_trace", "other"),
    ("t1_mprage_sag_p2_iso", "t1"), ("t1_mprage_sag_p2_iso_MPR_tra", "other"), ("t1_vibe_tra", "t1"),
    ("t1_fl2d_tra", "t1"), ("t2_swi_tra_p2", "other"), ("ep2d_perf", "other"),
    # Philips
    ("Survey", "other"), ("T1W_SE-TRA_FS", "t1"), ("T2W_TSE_TRA", "t2"), ("T2W_FLAIR_TRA", "flair"), ("DWI", "other"),
    ("DWI HR", "other"), ("T1W_3D_TFE", "t1"), ("T2_FFE", "other"), ("SENSE_Ref", "other"),
    # Canon / Toshiba
    ("T1_SE_AX", "t1"), ("T1_SE_AX+C", "t1"), ("T1 +C", "t1"), ("T2_FSE_AX", "t2"), ("FLAIR_AX", "flair"),
    ("DWI_AX", "other"), ("ADC", "other"),
    # saying nothing
    ("", None), ("Series 7", None), ("Mag_Images", None),
])
def test_name_kind_reads_the_vendors_habits(description, expected):
    assert name_kind(description) == expected


def test_name_kind_reads_the_protocol_name_too():
    assert name_kind("", "t2_tirm_tra_dark-fluid") == "flair"
    assert name_kind("Series 7", "T1W_SE-TRA_FS CLEAR") == "t1"


@pytest.mark.parametrize(("description", "contrast", "word"), [
    ("Ax T1 +C", True, "+c"), ("T1_SE_AX+C", True, "+c"), ("t1_se_tra_KM", True, "km"),
    ("AX T1 POST GD", True, "post"), ("T1 SE Gd", True, "gd"), ("T1 post", True, "post"),
    ("Sag T1 C+", True, "c"), ("T1 contrast", True, "contrast"),
    ("AX T1 PRE", False, "pre"), ("T1 pre-contrast", False, "pre contrast"), ("T1 nativ", False, "nativ"),
    ("T1 without contrast", False, "without contrast"), ("T1 w/o contrast", False, "w o contrast"),
    ("Ax T1 non-contrast", False, "non contrast"), ("T1 ohne KM", False, "ohne km"), ("T1 pre gad", False, "pre gad"),
    ("T1 +C pre-op", True, "+c"),
    ("T1_SE_AX", None, None), ("T1W_SE-TRA_FS", None, None), ("Ax T1 FLAIR", None, None),
    ("t1_mprage_sag_p2_iso", None, None), ("FLAIR_AX", None, None), ("T2W_TSE_TRA", None, None),
])
def test_contrast_from_name_words(description, contrast, word):
    e = weigh_series(_t1(1, description))
    assert e.contrast is contrast
    name_notes = [n for n in e.notes if n.startswith("name says")]
    if word is None:
        assert name_notes == []
    else:
        assert len(name_notes) == 1
        quoted = name_notes[0].split("('")[1].rstrip("')")
        assert word in quoted and quoted.replace(" ", "") in re.sub(r"[^a-z0-9+]", "", description.lower())


def test_contrast_from_the_standard_attributes_and_not_from_none_values():
    def header(**values) -> SeriesHeader:
        ds = Dataset()
        ds.SeriesDescription = "T1_SE_AX"
        for k, v in values.items():
            setattr(ds, k, v)
        return SeriesHeader.read([ds])

    assert header(ContrastBolusAgent="Gadovist", ContrastBolusVolume="7.5").contrast == {
        "ContrastBolusAgent": "Gadovist", "ContrastBolusVolume": "7.5"}
    assert header(ContrastBolusAgent="NONE", ContrastBolusRoute="", ContrastBolusVolume="0").contrast == {}
    assert header(ContrastBolusAgent="no").contrast == {}
    e = weigh_series(_t1(1, "T1_SE_AX", contrast={"ContrastBolusAgent": "Gadovist"}))
    assert e.contrast is True
    assert any(n.startswith("contrast attributes: ContrastBolusAgent=Gadovist") for n in e.notes)


def test_the_name_saying_pre_contrast_is_outweighed_by_the_attributes():
    e = weigh_series(_t1(1, "T1 pre", contrast={"ContrastBolusAgent": "Dotarem"}))
    assert e.contrast is True and e.contrast_score == 1.0


def test_contrast_from_a_private_element_naming_an_agent(tmp_path):
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE", "pixel_spacing": (0.9, 0.9), "slice_step": 5.0}
    write_specs(tmp_path / "s", [
        SeriesSpec(1, "T1_SE_AX", "090000", **t1, private=[(0x0029, "ACME CONTRAST", 0x10, "LO", "none given")]),
        SeriesSpec(2, "T1_SE_AX", "091000", **t1,
                   private=[(0x0029, "ACME CONTRAST", 0x10, "LO", "Dotarem 0.5 mmol/ml")]),
    ])
    plain, post = (weigh_series(s) for s in scan_series(tmp_path / "s"))
    assert plain.series.header.private_contrast is None and plain.contrast is None
    assert post.series.header.private_contrast == "(0029,1010): Dotarem 0.5 mmol/ml"
    assert post.contrast is True
    assert any("private element names a contrast agent" in n and "Dotarem" in n for n in post.notes)


def test_image_type_marks_a_reformat_as_other_whatever_its_name_and_parameters():
    e = weigh_series(_series(1, "Sag T1 MPRAGE +C", tr=2300, te=3, ti=900, flip=8, seq="GR\\IR",
                             image_type="DERIVED\\SECONDARY\\MPR"))
    assert e.kind == "other" and e.scores["other"] == 10.0 and e.scores["t1"] == 5.0
    assert any(n.startswith("ImageType DERIVED/MPR/SECONDARY") for n in e.notes)


@pytest.mark.parametrize("description", ["DWI", "DWI HR", "Survey"])
def test_a_distractor_name_outweighs_parameters_that_look_like_a_sequence(description):
    params = {"tr": 3594, "te": 88, "seq": "SE"} if "DWI" in description else {"tr": 15, "te": 5.2, "flip": 20,
                                                                                "seq": "GR"}
    e = weigh_series(_series(1, description, **params))
    assert e.kind == "other", e.notes
    assert e.scores["other"] == 4.0 and max(e.scores["t1"], e.scores["t2"]) == 3.0


def test_split_evidence_is_not_used():
    e = weigh_series(_series(1, "T2 FSE", tr=500, te=10, seq="SE", sequence_name="*tir2d1"))  # t1 3, t2 2, flair 1
    assert e.kind == "t1"
    e = weigh_series(_series(1, "T1", tr=500, te=None, seq="SE", sequence_name="*tir2d1_16"))  # t1 2, flair 1
    assert e.kind == "t1"
    e = weigh_series(_series(1, "FLAIR", tr=500, te=10, seq="SE", sequence_name="*tir2d1"))  # t1 3, flair 3
    assert e.kind == "other"
    assert any("evidence split between t1 and flair" in n for n in e.notes)


def test_an_unusable_series_says_why_in_its_evidence():
    e = weigh_series(_t1(1, "Ax T1 +C", problem="irregular slice spacing (missing slices?)"))
    assert not e.usable and "unusable: irregular slice spacing (missing slices?)" in e.notes


def test_the_record_holds_the_evidence_for_the_json():
    e = weigh_series(_t1(7, "Ax T1 +C", contrast={"ContrastBolusAgent": "Gadovist"}, time=36000.0))
    record = e.record()
    assert record["kind"] == "t1" and record["contrast"] is True and record["chosen_as"] is None
    assert record["series_number"] == 7 and record["series_description"] == "Ax T1 +C"
    assert record["scores"] == {"t1": 5.0} and record["voxel_mm"] == [0.9, 0.9, 5.0] and record["axial"] is True
    assert record["contrast_attributes"] == {"ContrastBolusAgent": "Gadovist"}
    assert record["evidence"] == e.notes and len(e.notes) >= 3


# --- The order rule and the images ------------------------------------------------------------------------------------

def _same_protocol_pair(**kwargs) -> list[Series]:
    return [_series(901, "T1W_SE-TRA_FS", tr=626, te=15, flip=69, seq="SE", time=100.0, **kwargs),
            _series(1201, "T1W_SE-TRA_FS", tr=626, te=15, flip=69, seq="SE", time=800.0, **kwargs),
            _flair(1301, "T2W_FLAIR_TRA", time=900.0), _flair(701, "T2W_FLAIR_TRA", time=50.0)]


@pytest.mark.parametrize(("index", "words"), [
    (0.5, "the images agree (enhancement index +0.50)"), (0.05, "the images are inconclusive (enhancement index "
                                                                 "+0.05)"),
    (None, "the images could not be compared"),
])
def test_the_later_of_two_same_protocol_t1_series_is_post_contrast(index, words, caplog):
    evidence = [weigh_series(s) for s in _same_protocol_pair()]
    calls = []

    def enhancement(earlier, later):
        calls.append((earlier.number, later.number))
        return index

    with caplog.at_level(logging.INFO, logger="gliomics.io.dicom_evidence"):
        apply_order_rules(evidence, enhancement)
    pre, post, flair_after, flair_before = evidence
    assert calls == [(901, 1201)]
    assert pre.contrast is False and post.contrast is True
    assert post.notes[-1].startswith("acquired after series 901 'T1W_SE-TRA_FS' of the same protocol")
    assert post.notes[-1].endswith(f"post-contrast; {words}")
    assert "taken as pre-contrast" in pre.notes[-1]
    assert flair_after.contrast is True and "acquired after the post-contrast series 1201" in flair_after.notes[-1]
    assert flair_before.contrast is None
    assert any("taken as post-contrast" in r.getMessage() and "series 1201" in r.getMessage() for r in caplog.records)


def test_images_that_contradict_the_order_leave_the_pair_undecided(caplog):
    evidence = [weigh_series(s) for s in _same_protocol_pair()]
    with caplog.at_level(logging.WARNING, logger="gliomics.io.dicom_evidence"):
        apply_order_rules(evidence, lambda earlier, later: -0.4)
    pre, post, flair_after, _ = evidence
    assert pre.contrast is None and post.contrast is None and flair_after.contrast is None
    assert "the images show no enhancement (index -0.40): contrast unknown" in post.notes[-1]
    assert any("no enhancement" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match=r"no usable post-contrast T1 .*--series t1c="):
        select_series(_same_protocol_pair(), "study", enhancement=lambda earlier, later: -0.4)


def test_the_order_rule_needs_the_same_protocol_and_no_contrast_evidence():
    calls = []
    series = [_t1(2, "Ax T1", time=100.0), _series(3, "Ax T1", tr=650, te=10, flip=90, seq="SE", time=200.0),
              _t1(4, "T1_SE_AX", time=300.0), _t1(5, "T1_SE_AX+C", time=400.0)]
    evidence = [weigh_series(s) for s in series]
    apply_order_rules(evidence, lambda a, b: calls.append((a.number, b.number)) or 1.0)
    assert calls == []  # another TR; another name; a pair whose later one already says post-contrast
    assert [e.contrast for e in evidence] == [None, None, None, True]


def test_series_acquired_after_contrast_are_post_contrast_and_those_before_are_not():
    evidence = [weigh_series(s) for s in (_t2(3, time=100.0), _t1(5, "Ax T1 +C", time=200.0), _t2(6, time=300.0),
                                          _flair(7), _t1(8, "Ax T1 pre", time=400.0))]
    apply_order_rules(evidence)
    assert [e.contrast for e in evidence] == [None, True, True, None, False]  # no time: unknown; the name stays


@pytest.fixture
def t1_pair_images(tmp_path):
    """Read back a plain, an enhanced and a dimmer 32×32 head written as DICOM (one session)."""
    def read(number, volume):
        uids = write_specs(tmp_path / str(number), [SeriesSpec(number, "T1", volume=volume)])
        assert len(uids) == 1
        return read_series(scan_series(tmp_path / str(number))[0])

    return {"plain": read(1, head_volume(4)), "enhanced": read(2, head_volume(4, vessels=2.5)),
            "dimmer": read(3, head_volume(4, vessels=0.4)), "again": read(4, head_volume(4))}


def test_enhancement_index_sees_the_bright_tail_of_enhancement(t1_pair_images):
    images = t1_pair_images
    assert enhancement_index(images["plain"], images["enhanced"]) > 0.1
    assert enhancement_index(images["enhanced"], images["plain"]) < -0.1  # the later one dimmer
    assert enhancement_index(images["plain"], images["dimmer"]) < -0.1
    assert abs(enhancement_index(images["plain"], images["again"])) < 0.05


def test_enhancement_index_is_none_for_images_that_barely_overlap(t1_pair_images):
    plain = t1_pair_images["plain"]
    moved = sitk.Image(t1_pair_images["enhanced"])
    moved.SetOrigin(tuple(o + 200.0 for o in moved.GetOrigin()))
    assert enhancement_index(plain, moved) is None
    tiny = sitk.GetImageFromArray(sitk.GetArrayFromImage(plain)[:2, :8, :8])  # too few voxels to compare
    assert enhancement_index(tiny, tiny) is None


# --- The choice per sequence ------------------------------------------------------------------------------------------

def _images_enhancement():
    cache = {}

    def read(s):
        if s.series_uid not in cache:
            cache[s.series_uid] = read_series(s)
        return cache[s.series_uid]

    return lambda earlier, later: enhancement_index(read(earlier), read(later))


VENDORS = {
    "ge": (ge_study, {}, {"t1n": 3, "t1c": 8, "t2w": 4, "t2f": 5}),
    "ge without contrast attributes": (ge_study, {"contrast_attribute": False}, {"t1n": 3, "t1c": 8, "t2w": 4,
                                                                                "t2f": 5}),
    "siemens": (siemens_study, {}, {"t1n": 6, "t1c": 8, "t2w": 2, "t2f": 3}),
    "siemens without agent": (siemens_study, {"agent": None}, {"t1n": 6, "t1c": 8, "t2w": 2, "t2f": 3}),
    "philips": (philips_study, {}, {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}),
    "philips 3d tfe": (philips_study, {"t1": "tfe"}, {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}),
    "canon": (canon_study, {}, {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
    "canon t1 +c": (canon_study, {"post_name": "T1 +C"}, {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}),
}
#: Series that are no input, per builder: kind "other" whatever their parameters say.
DISTRACTORS = {ge_study: {1, 2, 6, 9}, siemens_study: {1, 4, 9}, philips_study: {101, 301}, canon_study: {1, 5}}


@pytest.mark.parametrize("vendor", list(VENDORS))
def test_vendor_studies_choose_every_sequence_on_the_evidence(vendor, tmp_path):
    build, options, expected = VENDORS[vendor]
    build(tmp_path / "s", **options)
    selection = select_series(scan_series(tmp_path / "s"), "s", enhancement=_images_enhancement())
    assert _chosen(selection) == expected
    by_number = {e.series.number: e for e in selection.evidence}
    for number in DISTRACTORS[build]:
        assert by_number[number].kind == "other", (number, by_number[number].notes)
        assert by_number[number].chosen_as is None
    for sequence, number in expected.items():
        assert by_number[number].chosen_as == sequence
        assert by_number[number].kind == {"t1n": "t1", "t1c": "t1", "t2w": "t2", "t2f": "flair"}[sequence]
    assert by_number[expected["t1c"]].contrast is True
    assert by_number[expected["t1n"]].contrast is not True
    assert all(e.notes for e in selection.evidence)
    lines = decision_lines(selection)
    assert [line.split(" <- ")[0] for line in lines] == ["t1n", "t1c", "t2w", "t2f"]
    assert all(f"series {expected[line[:3]]} " in line for line in lines)


def test_finer_voxels_win_3d_1mm_over_2d_5mm():
    selection = select_series([_t1(7, "Ax T1 +C"), _series(8, "Sag 3D T1 BRAVO +C", tr=8, te=3, ti=450, flip=12,
                                                           seq="GR", spacing=(1, 1, 1), normal=(-1, 0, 0)),
                               _t1(3, "Ax T1")], "s")
    assert _chosen(selection)["t1c"] == 8
    assert "finer voxels" in selection.reasons["t1c"] and "over 7" in selection.reasons["t1c"]


@pytest.mark.parametrize("axial_step", [1.0, 1.05, 1.09, 1.14])
def test_axial_wins_at_equal_resolution(axial_step):
    """Voxel volumes within 15 % count as the same resolution, wherever they fall."""
    sagittal = _series(8, "Sag 3D T1 +C", tr=8, te=3, ti=450, flip=12, seq="GR", spacing=(1, 1, 1), normal=(-1, 0, 0))
    axial = _series(9, "Ax 3D T1 +C", tr=8, te=3, ti=450, flip=12, seq="GR", spacing=(1, 1, axial_step))
    assert axial_step < RESOLUTION_TOLERANCE
    for order in ([sagittal, axial], [axial, sagittal]):
        selection = select_series([*order, _t1(3, "Ax T1")], "s")
        assert _chosen(selection)["t1c"] == 9
        assert "axial" in selection.reasons["t1c"] and "finer voxels" not in selection.reasons["t1c"]


def test_voxels_coarser_by_more_than_the_tolerance_lose():
    axial = _series(9, "Ax 3D T1 +C", tr=8, te=3, ti=450, flip=12, seq="GR", spacing=(1, 1, 1.2))
    sagittal = _series(8, "Sag 3D T1 +C", tr=8, te=3, ti=450, flip=12, seq="GR", spacing=(1, 1, 1), normal=(-1, 0, 0))
    assert _chosen(select_series([axial, sagittal, _t1(3, "Ax T1")], "s"))["t1c"] == 8


def test_pre_contrast_t2_and_flair_are_preferred_over_finer_post_contrast_ones():
    series = [_t1(3, "Ax T1", time=100.0), _t2(4, time=200.0), _flair(5, time=300.0),
              _t1(7, "Ax T1 +C", time=400.0), _t2(10, "Ax T2 FSE", time=500.0, spacing=(0.5, 0.5, 3.0)),
              _flair(11, "Sag CUBE FLAIR", time=600.0, spacing=(1, 1, 1), normal=(-1, 0, 0)),
              _t2(12, "Ax T2 FSE +C", spacing=(0.5, 0.5, 2.0))]
    selection = select_series(series, "s")
    assert _chosen(selection) == {"t1n": 3, "t1c": 7, "t2w": 4, "t2f": 5}
    assert "acquired before contrast" in selection.reasons["t2w"]
    assert "acquired before contrast" in selection.reasons["t2f"]
    assert {e.series.number: e.contrast for e in selection.evidence}[10] is True


def test_a_post_contrast_flair_is_a_flair_never_a_t1ce(tmp_path):
    flair_contrast_study(tmp_path / "both")
    selection = select_series(scan_series(tmp_path / "both"), "both")
    assert _chosen(selection) == {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 4}
    post_flair = next(e for e in selection.evidence if e.series.number == 6)
    assert post_flair.kind == "flair" and post_flair.contrast is True and post_flair.chosen_as is None
    flair_contrast_study(tmp_path / "only", pre_flair=False)
    selection = select_series(scan_series(tmp_path / "only"), "only")
    assert _chosen(selection) == {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": 6}


def test_a_post_contrast_flair_alone_is_no_t1ce():
    with pytest.raises(InputError, match="no usable post-contrast T1"):
        select_series([_t1(2, "Ax T1"), _flair(6, contrast={"ContrastBolusAgent": "Dotarem"})], "s")


def _tied() -> list[Series]:
    agent = {"ContrastBolusAgent": "Gadovist"}
    return [_t1(3, "Ax T1", time=100.0), _t1(7, "Ax T1 +C", contrast=agent, time=200.0),
            _t1(8, "Ax T1 +C", contrast=agent, time=300.0), _t2(4, time=50.0)]


def test_a_tie_lists_both_candidates_and_names_the_override():
    with pytest.raises(InputError) as caught:
        select_series(_tied(), "studyX")
    message = str(caught.value)
    assert message.startswith("studyX: cannot choose the t1c series: 2 candidates are equal on the evidence")
    assert "series 7 'Ax T1 +C' (SeriesInstanceUID 1.2.826.0.1.7" in message
    assert "series 8 'Ax T1 +C' (SeriesInstanceUID 1.2.826.0.1.8" in message
    assert "--series t1c=" in message


def test_a_tie_of_float_noise_is_still_a_tie():
    """Slice steps that differ in the 7th digit (as scanners write them) are no evidence."""
    edge = RESOLUTION_TOLERANCE ** 10.5 / 0.81  # a slice step whose voxel volume lies where rounding would split
    agent = {"ContrastBolusAgent": "Gadovist"}
    series = [_t1(3, "Ax T1"), _t1(7, "Ax T1 +C", contrast=agent, spacing=(0.9, 0.9, edge * (1 - 1e-7))),
              _t1(8, "Ax T1 +C", contrast=agent, spacing=(0.9, 0.9, edge * (1 + 1e-7)))]
    assert math.isclose(series[1].voxel_volume, series[2].voxel_volume, rel_tol=1e-6)
    with pytest.raises(InputError, match="2 candidates are equal"):
        select_series(series, "s")


@pytest.mark.parametrize("by", ["number", "uid"])
def test_the_override_resolves_a_tie(by):
    value = "8" if by == "number" else "1.2.826.0.1.8"
    selection = select_series(_tied(), "s", overrides={"t1c": value})
    assert _chosen(selection) == {"t1n": 3, "t1c": 8, "t2w": 4}
    assert selection.reasons["t1c"] == f"--series t1c={value}"
    assert next(e for e in selection.evidence if e.series.number == 8).chosen_as == "t1c"
    assert decision_lines(selection)[1] == f"t1c <- series 8 'Ax T1 +C': --series t1c={value}"
    assert decision_lines(selection)[3] == "t2f: no series"


def test_an_override_is_taken_as_given_and_the_series_is_not_chosen_twice():
    selection = select_series(_tied(), "s", overrides={"t1n": "7", "t1c": "8"})
    assert _chosen(selection) == {"t1n": 7, "t1c": 8, "t2w": 4}
    assert {e.series.number: e.chosen_as for e in selection.evidence}[3] is None


@pytest.mark.parametrize(("overrides", "error", "words"), [
    ({"t1c": "99"}, InputError, "--series t1c=99: no such series number or SeriesInstanceUID (series: 3 ('Ax T1')"),
    ({"t1c": "1.2.3.4"}, InputError, "--series t1c=1.2.3.4: no such series"),
    ({"t9": "7"}, ConfigError, "--series t9=…: unknown sequence; expected one of t1n, t1c, t2w, t2f"),
    ({"t1c": "5"}, InputError, "--series t1c=5: series 5 'Ax T1 +C' is unusable (irregular slice spacing"),
])
def test_a_bad_override_is_a_clear_error(overrides, error, words):
    series = [*_tied(), _t1(5, "Ax T1 +C", problem="irregular slice spacing (missing slices?)")]
    with pytest.raises(error) as caught:
        select_series(series, "s", overrides=overrides)
    assert words in str(caught.value)


def test_an_override_number_shared_by_two_series_asks_for_the_uid():
    series = [*_tied(), _series(7, "localizer", uid="1.2.826.0.1.77")]
    with pytest.raises(InputError, match="several series have this number; give the SeriesInstanceUID"):
        select_series(series, "s", overrides={"t1c": "7"})
    assert _chosen(select_series(series, "s", overrides={"t1c": "1.2.826.0.1.7"}))["t1c"] == 7


def test_no_t1ce_lists_the_t1_series_and_names_the_override():
    with pytest.raises(InputError) as caught:
        select_series([_t1(2, "T1_SE_AX", time=100.0), _t2(3), _flair(4)], "s")
    message = str(caught.value)
    assert "s: no usable post-contrast T1 (T1ce) series (T1 series: series 2 'T1_SE_AX'" in message
    assert "--series t1c=" in message


def test_an_unusable_t1ce_is_named_with_its_problem():
    with pytest.raises(InputError) as caught:
        select_series([_t1(2, "Ax T1"), _t1(7, "Ax T1 +C", problem="irregular slice spacing (missing slices?)")], "s")
    assert "(series 7 'Ax T1 +C': irregular slice spacing (missing slices?))" in str(caught.value)


def test_missing_sequences_other_than_t1ce_are_left_out(caplog):
    with caplog.at_level(logging.WARNING, logger="gliomics.io.dicom_sequences"):
        selection = select_series([_t1(7, "Ax T1 +C")], "s")
    assert _chosen(selection) == {"t1c": 7}
    assert any("no series for t1n, t2w, t2f" in r.getMessage() for r in caplog.records)
