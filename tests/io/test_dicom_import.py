"""DICOM in through ``gliomics import --format dicom``: the series chosen per sequence in the vendors' studies and
why (``dicom_sources.json``, the console), conversion to NIfTI in scanner geometry, no patient data in the outputs,
and bad input (no T1ce, ties, missing slices, mixed orientations, corrupt files, bad overrides) stopping the import
with one clear line (exit status 2) before any case is written."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from dicom_testing import (
    PATIENT_ID,
    PATIENT_NAME,
    PIXEL_SPACING,
    SHAPE,
    SLICE_STEP,
    SeriesSpec,
    canon_study,
    flair_contrast_study,
    ge_study,
    phantom_volume,
    philips_study,
    siemens_study,
    truncate,
    write_garbage_dicom,
    write_specs,
    write_study,
)
from gliomics.cli.main import app
from gliomics.constants import SEQUENCES

runner = CliRunner()
#: The real Philips study (7 series), next to the repository.
REAL_STUDY = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "dicom" / "study1"


def _import(source: Path, out: Path, *args: str):
    return runner.invoke(app, ["import", "--format", "dicom", "-i", str(source), "-o", str(out), *args])


def _sources(out: Path, case: str) -> dict:
    return json.loads((out / case / "dicom_sources.json").read_text())


def _chosen(sources: dict) -> dict[str, int]:
    return {k: v["series_number"] for k, v in sources["sequences"].items()}


def _by_number(sources: dict) -> dict[int, dict]:
    return {s["series_number"]: s for s in sources["series"]}


def _error_line(result) -> str:
    """The one error line of a failed import (exit status 2)."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("gliomics: error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _no_case_written(out: Path) -> None:
    assert not out.exists() or list(out.iterdir()) == [], sorted(p.name for p in out.rglob("*"))


# --- Conversion -------------------------------------------------------------------------------------------------------

def test_import_converts_each_series_in_scanner_geometry(tmp_path):
    uids = write_study(tmp_path / "study01", reverse_files=True)
    out = tmp_path / "out"
    result = _import(tmp_path / "study01", out)
    assert result.exit_code == 0, result.output
    case = out / "study01"
    assert sorted(p.name for p in case.iterdir()) == [
        "dicom_sources.json", "study01-t1c.nii.gz", "study01-t1n.nii.gz", "study01-t2f.nii.gz", "study01-t2w.nii.gz"]
    t1c = nib.load(case / "study01-t1c.nii.gz")
    assert t1c.shape == (SHAPE[2], SHAPE[1], SHAPE[0])  # columns, rows, slices
    np.testing.assert_allclose(t1c.header.get_zooms(), (PIXEL_SPACING[1], PIXEL_SPACING[0], SLICE_STEP))
    # DICOM LPS origin (-10, -12, 30) is RAS (10, 12, 30); voxel (i, j, k) = column, row, slice.
    np.testing.assert_allclose(t1c.affine[:3, 3], (10.0, 12.0, 30.0))
    np.testing.assert_array_equal(np.asarray(t1c.dataobj)[:, :, 0].T, phantom_volume(0)[0])
    sources = json.loads((case / "dicom_sources.json").read_text())
    assert sources["sequences"]["t1c"]["series_instance_uid"] == uids["AX T1 POST GD"]
    assert sources["sequences"]["t1n"]["series_instance_uid"] == uids["AX T1 PRE"]
    assert sources["sequences"]["t2f"]["series_description"] == "Ax T2 FLAIR"
    assert sources["sequences"]["t2w"]["series_description"] == "AX T2 FSE"
    assert len(sources["sequences"]["t1n"]["files"]) == SHAPE[0]
    with (out / "manifest.csv").open() as fh:
        row = next(csv.DictReader(fh))
    assert row["case_id"] == "study01" and row["t1c"] == "study01/study01-t1c.nii.gz"


def test_json_outputs_hold_no_patient_identity(tmp_path):
    philips_study(tmp_path / "study01")
    out = tmp_path / "out"
    assert _import(tmp_path / "study01", out).exit_code == 0
    outputs = list(out.rglob("*.json"))
    assert [p.name for p in outputs] == ["dicom_sources.json"]
    for path in outputs:
        text = path.read_text()
        for secret in (PATIENT_NAME, PATIENT_ID, "Testpatient", "19700101"):
            assert secret not in text, f"{secret} found in {path}"


# --- The vendors' studies ---------------------------------------------------------------------------------------------

VENDORS = {
    "ge": (ge_study, {}, {"t1n": 3, "t1c": 8, "t2w": 4, "t2f": 5}, {1, 2, 6, 9}),
    "siemens": (siemens_study, {}, {"t1n": 6, "t1c": 8, "t2w": 2, "t2f": 3}, {1, 4, 9}),
    "philips": (philips_study, {}, {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}, {101, 301}),
    "philips-3d-tfe": (philips_study, {"t1": "tfe"}, {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}, {101, 301}),
    "canon": (canon_study, {}, {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}, {1, 5}),
}
KIND = {"t1n": "t1", "t1c": "t1", "t2w": "t2", "t2f": "flair"}


@pytest.mark.parametrize("vendor", list(VENDORS))
def test_vendor_study_chooses_each_sequence_and_records_the_evidence(vendor, tmp_path):
    build, options, expected, distractors = VENDORS[vendor]
    uids = build(tmp_path / vendor, **options)
    out = tmp_path / "out"
    result = _import(tmp_path / vendor, out)
    assert result.exit_code == 0, result.output
    sources = _sources(out, vendor)
    assert _chosen(sources) == expected
    assert {k: v["series_instance_uid"] for k, v in sources["sequences"].items()} == {
        k: uids[n] for k, n in expected.items()}
    assert all(sources["sequences"][k]["reason"] for k in SEQUENCES)
    series = _by_number(sources)
    assert set(series) == set(uids)  # every series, chosen or not, with its evidence
    for number, record in series.items():
        assert record["kind"] in ("t1", "t2", "flair", "other")
        assert record["contrast"] in (True, False, None)
        assert record["evidence"] and all(isinstance(n, str) and n for n in record["evidence"])
        assert record["chosen_as"] == next((k for k, n in expected.items() if n == number), None)
    for number in distractors:
        assert series[number]["kind"] == "other", series[number]["evidence"]
    for sequence, number in expected.items():
        assert series[number]["kind"] == KIND[sequence]
    assert series[expected["t1c"]]["contrast"] is True
    assert series[expected["t1n"]]["contrast"] in (False, None)
    assert sorted(p.name for p in (out / vendor).glob("*.nii.gz")) == sorted(f"{vendor}-{k}.nii.gz" for k in SEQUENCES)
    for sequence, number in expected.items():  # one console line per sequence: the series and why
        line = next(li for li in result.stdout.splitlines() if li.startswith(f"{vendor}: {sequence} <- "))
        assert line.startswith(f"{vendor}: {sequence} <- series {number} '") and "': " in line


def test_contrast_by_the_standard_attributes_and_by_the_name(tmp_path):
    ge_study(tmp_path / "ge")
    assert _import(tmp_path / "ge", tmp_path / "out").exit_code == 0
    series = _by_number(_sources(tmp_path / "out", "ge"))
    for number in (7, 8):
        assert series[number]["contrast"] is True
        assert series[number]["contrast_attributes"] == {"ContrastBolusAgent": "GADAVIST 7.5ML"}
        assert "contrast attributes: ContrastBolusAgent=GADAVIST 7.5ML" in series[number]["evidence"]
        assert "name says post-contrast ('+c')" in series[number]["evidence"]
    assert series[3]["contrast"] is None and series[3]["contrast_attributes"] == {}


@pytest.mark.parametrize(("build", "options", "number", "word", "t1c"), [
    (canon_study, {}, 6, "+c", 6), (siemens_study, {"agent": None}, 7, "km", 8),
    (canon_study, {"post_name": "T1_SE_AX post"}, 6, "post", 6), (canon_study, {"post_name": "T1 SE Gd"}, 6, "gd", 6),
])
def test_contrast_by_name_words_alone(build, options, number, word, t1c, tmp_path):
    build(tmp_path / "s", **options)
    assert _import(tmp_path / "s", tmp_path / "out").exit_code == 0
    sources = _sources(tmp_path / "out", "s")
    record = _by_number(sources)[number]
    assert sources["sequences"]["t1c"]["series_number"] == t1c
    assert record["contrast"] is True and record["contrast_attributes"] == {}
    assert f"name says post-contrast ({word!r})" in record["evidence"]


def test_contrast_by_a_private_element_naming_the_agent(tmp_path):
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE", "pixel_spacing": (0.9, 0.9), "slice_step": 5.0}
    write_specs(tmp_path / "s", [
        SeriesSpec(2, "T1_SE_AX", "090300", **t1),
        SeriesSpec(3, "T2_FSE_AX", "090600", tr=4500, te=100, scanning_sequence="SE"),
        SeriesSpec(6, "T1_SE_AX", "092000", **t1, private=[(0x0029, "ACME INJECTOR", 0x10, "LO", "DOTAREM 15 ml")]),
    ])
    assert _import(tmp_path / "s", tmp_path / "out").exit_code == 0
    sources = _sources(tmp_path / "out", "s")
    assert _chosen(sources) == {"t1n": 2, "t1c": 6, "t2w": 3}
    record = _by_number(sources)[6]
    assert record["private_contrast"] == "(0029,1010): DOTAREM 15 ml"
    assert "private element names a contrast agent ((0029,1010): DOTAREM 15 ml)" in record["evidence"]
    assert _by_number(sources)[2]["private_contrast"] is None


def test_contrast_by_the_acquisition_order_checked_against_the_images(tmp_path, caplog):
    philips_study(tmp_path / "p")
    with caplog.at_level(logging.INFO, logger="gliomics.io.dicom_evidence"):
        result = _import(tmp_path / "p", tmp_path / "out")
    assert result.exit_code == 0, result.output
    sources = _sources(tmp_path / "out", "p")
    series = _by_number(sources)
    assert _chosen(sources)["t1c"] == 1201 and _chosen(sources)["t1n"] == 901
    order = next(n for n in series[1201]["evidence"] if n.startswith("acquired after series 901 'T1W_SE-TRA_FS'"))
    assert "of the same protocol (20240101 145406 after 20240101 144224): post-contrast" in order
    assert "the images agree (enhancement index +" in order
    index = float(order.split("enhancement index ")[1].rstrip(")"))
    assert index > 0.1
    assert series[901]["contrast"] is False and "taken as pre-contrast" in series[901]["evidence"][-1]
    assert series[1301]["contrast"] is True and series[701]["contrast"] is None
    assert sources["sequences"]["t1c"]["reason"].endswith(order)
    assert any("taken as post-contrast" in r.getMessage() and "series 1201" in r.getMessage() for r in caplog.records)
    t1c_line = next(li for li in result.stdout.splitlines() if li.startswith("p: t1c <- "))
    assert t1c_line == f"p: t1c <- series 1201 'T1W_SE-TRA_FS': {sources['sequences']['t1c']['reason']}"


def test_images_contradicting_the_order_stop_the_import(tmp_path, caplog):
    philips_study(tmp_path / "p", later_first=True)  # the later T1 is the dimmer one
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="gliomics.io.dicom_evidence"):
        result = _import(tmp_path / "p", out)
    line = _error_line(result)
    assert "no usable post-contrast T1 (T1ce) series" in line and "--series t1c=" in line
    assert "series 901 'T1W_SE-TRA_FS'" in line and "series 1201 'T1W_SE-TRA_FS'" in line
    assert any("show no enhancement" in r.getMessage() for r in caplog.records)
    _no_case_written(out)
    # the reader knows better: what came after the named T1ce is post-contrast too (1201 is then no plain T1 unless
    # named, and the pre-contrast FLAIR 701 is preferred to 1301)
    result = _import(tmp_path / "p", out, "--series", "t1c=901")
    assert result.exit_code == 0, result.output
    assert _chosen(_sources(out, "p")) == {"t1c": 901, "t2w": 401, "t2f": 701}
    assert any("named by --series t1c=901" in n for n in _by_number(_sources(out, "p"))[901]["evidence"])
    result = _import(tmp_path / "p", out, "--series", "t1c=901", "--series", "t1n=1201", "--overwrite")
    assert result.exit_code == 0, result.output
    assert _chosen(_sources(out, "p")) == {"t1n": 1201, "t1c": 901, "t2w": 401, "t2f": 701}


def test_a_post_contrast_flair_is_chosen_only_as_the_flair(tmp_path):
    flair_contrast_study(tmp_path / "both")
    flair_contrast_study(tmp_path / "only", pre_flair=False)
    for case, t2f in (("both", 4), ("only", 6)):
        assert _import(tmp_path / case, tmp_path / "out").exit_code == 0
        sources = _sources(tmp_path / "out", case)
        assert _chosen(sources) == {"t1n": 2, "t1c": 5, "t2w": 3, "t2f": t2f}
        post_flair = _by_number(sources)[6]
        assert post_flair["kind"] == "flair" and post_flair["contrast"] is True
        assert post_flair["chosen_as"] == ("t2f" if case == "only" else None)


def test_several_studies_become_several_cases(tmp_path):
    canon_study(tmp_path / "all" / "A")
    siemens_study(tmp_path / "all" / "B")
    out = tmp_path / "out"
    result = _import(tmp_path / "all", out)
    assert result.exit_code == 0, result.output
    assert _chosen(_sources(out, "A")) == {"t1n": 2, "t1c": 6, "t2w": 3, "t2f": 4}
    assert _chosen(_sources(out, "B")) == {"t1n": 6, "t1c": 8, "t2w": 2, "t2f": 3}
    assert "imported 2 cases" in result.stdout
    line = _error_line(_import(tmp_path / "all", tmp_path / "out2", "--series", "t1c=6"))
    assert "holds 2 studies; --series applies to a single study" in line
    _no_case_written(tmp_path / "out2")


# --- Ties and overrides -----------------------------------------------------------------------------------------------

def _tied_study(folder: Path) -> dict[int, str]:
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE", "pixel_spacing": (0.9, 0.9), "slice_step": 5.0}
    return write_specs(folder, [
        SeriesSpec(3, "Ax T1", "100000", **t1),
        SeriesSpec(4, "Ax T2 FSE", "100500", tr=4000, te=100, scanning_sequence="SE"),
        SeriesSpec(7, "Ax T1 +C", "101000", **t1, contrast_agent="MULTIHANCE"),
        SeriesSpec(8, "Ax T1 +C", "101500", **t1, contrast_agent="MULTIHANCE"),
    ])


def test_a_tie_stops_the_import_listing_both_candidates(tmp_path):
    uids = _tied_study(tmp_path / "s")
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out))
    assert "cannot choose the t1c series: 2 candidates are equal on the evidence" in line
    assert f"series 7 'Ax T1 +C' (SeriesInstanceUID {uids[7]}" in line
    assert f"series 8 'Ax T1 +C' (SeriesInstanceUID {uids[8]}" in line
    assert "--series t1c=" in line
    _no_case_written(out)


@pytest.mark.parametrize(("by", "number"), [("number", 8), ("uid", 7)])
def test_the_series_override_resolves_the_tie(by, number, tmp_path):
    uids = _tied_study(tmp_path / "s")
    value = str(number) if by == "number" else uids[number]
    out = tmp_path / "out"
    result = _import(tmp_path / "s", out, "--series", f"t1c={value}")
    assert result.exit_code == 0, result.output
    sources = _sources(out, "s")
    assert _chosen(sources) == {"t1n": 3, "t1c": number, "t2w": 4}
    assert sources["sequences"]["t1c"]["series_instance_uid"] == uids[number]
    assert sources["sequences"]["t1c"]["reason"] == f"--series t1c={value}"
    assert f"s: t1c <- series {number} 'Ax T1 +C': --series t1c={value}" in result.stdout.splitlines()
    assert _by_number(sources)[15 - number]["chosen_as"] is None


@pytest.mark.parametrize(("option", "words"), [
    ("t1c=99", "--series t1c=99: no such series number or SeriesInstanceUID (series: 3 ('Ax T1')"),
    ("t1c=1.2.3.999", "--series t1c=1.2.3.999: no such series number or SeriesInstanceUID"),
    ("t9=7", "--series t9=…: unknown sequence; expected one of t1n, t1c, t2w, t2f"),
    ("t1c", "--series 't1c': expected SEQUENCE=<series number or SeriesInstanceUID>"),
    ("t1c=", "--series 't1c=': expected SEQUENCE=<series number or SeriesInstanceUID>"),
])
def test_a_bad_override_is_one_clear_error(option, words, tmp_path):
    _tied_study(tmp_path / "s")
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out, "--series", option))
    assert words in line
    _no_case_written(out)


# --- Bad input --------------------------------------------------------------------------------------------------------

def test_no_usable_t1ce_names_the_t1_series_and_the_override(tmp_path):
    write_specs(tmp_path / "s", [
        SeriesSpec(1, "Survey", "090000", tr=8, te=4, flip=20, scanning_sequence="GR", orientation="mixed"),
        SeriesSpec(2, "T1_SE_AX", "090300", tr=500, te=10, scanning_sequence="SE"),
        SeriesSpec(3, "T2_FSE_AX", "090600", tr=4500, te=100, scanning_sequence="SE"),
        SeriesSpec(4, "FLAIR_AX", "091000", tr=9000, te=100, ti=2500, scanning_sequence="IR"),
    ])
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out))
    assert "no usable post-contrast T1 (T1ce) series (T1 series: series 2 'T1_SE_AX'" in line
    assert "--series t1c=" in line
    _no_case_written(out)


@pytest.mark.parametrize(("change", "problem"), [
    ({"skip_slices": (4,)}, "irregular slice spacing (missing slices?)"),
    ({"orientation": "mixed"}, "instances of different orientation or size"),
])
def test_an_unusable_t1ce_names_the_series_and_its_problem(change, problem, tmp_path):
    t1 = {"tr": 500, "te": 10, "flip": 90, "scanning_sequence": "SE"}
    write_specs(tmp_path / "s", [
        SeriesSpec(2, "T1_SE_AX", "090300", **t1),
        SeriesSpec(3, "T2_FSE_AX", "090600", tr=4500, te=100, scanning_sequence="SE"),
        SeriesSpec(6, "T1_SE_AX+C", "092000", **t1, **change),
    ])
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out))
    assert f"no usable post-contrast T1 (T1ce) series (series 6 'T1_SE_AX+C': {problem}" in line
    assert "--series t1c=" in line
    _no_case_written(out)
    line = _error_line(_import(tmp_path / "s", out, "--series", "t1c=6"))
    assert f"--series t1c=6: series 6 'T1_SE_AX+C' is unusable ({problem}" in line
    _no_case_written(out)


@pytest.mark.parametrize(("damage", "why"), [
    ("garbage", "no file meta information after the DICM marker"),
    ("header cut short", "truncated in element (0020,000E): 10 of 64 bytes"),
    ("no data set", "no data set after the file meta information"),
])
def test_a_corrupt_file_among_good_ones_is_named(damage, why, tmp_path):
    uids = canon_study(tmp_path / "s")
    folder = tmp_path / "s" / "0006"
    if damage == "garbage":
        bad = write_garbage_dicom(folder / "IM0099.dcm")
    else:
        bad = folder / "IM0099.dcm"
        shutil.copy(folder / "IM0004.dcm", bad)
        data = bad.read_bytes()
        # cut inside the SeriesInstanceUID's value, or inside the file meta information
        truncate(bad, data.index(uids[6].encode()) + 10 if damage == "header cut short" else 150)
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out))
    assert line.startswith(f"gliomics: error: {bad}: corrupt DICOM file ({why}")
    _no_case_written(out)


def test_a_file_with_truncated_pixel_data_is_named(tmp_path):
    canon_study(tmp_path / "s")
    bad = truncate(tmp_path / "s" / "0006" / "IM0004.dcm", -100)
    out = tmp_path / "out"
    line = _error_line(_import(tmp_path / "s", out))
    assert line.startswith(f"gliomics: error: {bad}: cannot read this file of series 6 'T1_SE_AX+C'")
    _no_case_written(out)


def test_files_that_are_not_dicom_are_skipped(tmp_path):
    canon_study(tmp_path / "s")
    (tmp_path / "s" / "0006" / "notes.txt").write_text("not an image")
    (tmp_path / "s" / "0006" / "README").write_bytes(b"no preamble, no marker" * 20)
    assert _import(tmp_path / "s", tmp_path / "out").exit_code == 0


# --- The real study ---------------------------------------------------------------------------------------------------

def test_real_philips_study(tmp_path):
    assert REAL_STUDY.is_dir(), f"{REAL_STUDY}: the real DICOM study is missing"
    out = tmp_path / "out"
    result = _import(REAL_STUDY, out)
    assert result.exit_code == 0, result.output
    sources = _sources(out, "study1")
    assert _chosen(sources) == {"t1n": 901, "t1c": 1201, "t2w": 401, "t2f": 701}
    series = _by_number(sources)
    assert set(series) == {101, 301, 401, 701, 901, 1201, 1301}
    assert series[101]["chosen_as"] is None and series[301]["chosen_as"] is None and series[1301]["chosen_as"] is None
    assert series[101]["kind"] == "other" and series[301]["kind"] == "other"
    for number, kind in ((401, "t2"), (701, "flair"), (901, "t1"), (1201, "t1"), (1301, "flair")):
        assert series[number]["kind"] == kind
    assert all(record["evidence"] for record in series.values())
    assert series[1201]["contrast"] is True and series[901]["contrast"] is False
    order = [n for n in series[1201]["evidence"] if n.startswith("acquired after series 901 'T1W_SE-TRA_FS'")]
    assert len(order) == 1 and "post-contrast" in order[0] and "the images agree" in order[0]
    assert series[1301]["contrast"] is True  # acquired after the contrast: the pre-contrast FLAIR 701 is chosen
    for key in SEQUENCES:
        image = nib.load(out / "study1" / f"study1-{key}.nii.gz")
        assert image.shape[2] == 26
