"""The cohort generator and its CLI: layout, files, CSVs and determinism."""

from __future__ import annotations

import csv
import filecmp

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import MARKERS, SEQUENCES
from gliomics.phantom import PhantomSettings, generate_cohort

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    result = runner.invoke(app, ["phantom", "--out", str(out), "--cases", "4", "--spacing", "4", "--sites", "2",
                                 "--seed", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _case_dirs(root):
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_layout_and_geometry(cohort):
    cases = _case_dirs(cohort)
    assert len(cases) == 4
    for case in cases:
        cid = case.name
        assert cid.startswith("PHANTOM-") and cid.rsplit("-", 1)[1] in ("000", "100")
        imgs = [nib.load(case / f"{cid}-{key}.nii.gz") for key in (*SEQUENCES, "seg")]
        for img in imgs:
            assert img.shape == (60, 60, 39)
            np.testing.assert_array_equal(img.affine, imgs[0].affine)
        assert imgs[-1].get_data_dtype() == np.uint8 and imgs[0].get_data_dtype() == np.float32
        seg = np.asarray(imgs[-1].dataobj)
        assert set(np.unique(seg)) <= {0, 1, 2, 3, 4} and seg.any()
        assert nib.aff2axcodes(imgs[0].affine) == ("R", "A", "S")
        assert (cid.endswith("100")) == bool((seg == 4).any())


def test_csvs(cohort):
    with open(cohort / "markers.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["case_id"] for r in rows) == [p.name for p in _case_dirs(cohort)]
    assert list(rows[0]) == ["case_id", "site", "age", "sex", *MARKERS]
    assert {r["site"] for r in rows} == {"A", "B"}
    assert all(r[m] in ("0", "1") for r in rows for m in MARKERS)
    with open(cohort / "phantom_truth.csv") as fh:
        truth = list(csv.DictReader(fh))
    assert len(truth) == 4
    for r in truth:
        for m in MARKERS:
            assert 0.0 <= float(r[f"posterior_{m}"]) <= 1.0
            assert r[f"true_{m}"] in ("0", "1")


def test_same_arguments_give_identical_files(cohort, tmp_path):
    settings = PhantomSettings(cases=4, spacing=4.0, sites=2, seed=1)
    generate_cohort(tmp_path, settings, workers=2, progress=False)  # worker count must not matter
    for case in _case_dirs(cohort):
        for f in case.iterdir():
            assert filecmp.cmp(f, tmp_path / case.name / f.name, shallow=False), f.name
    assert filecmp.cmp(cohort / "markers.csv", tmp_path / "markers.csv", shallow=False)


def test_other_seed_and_site_start_give_other_sites(tmp_path):
    summary = generate_cohort(tmp_path, PhantomSettings(cases=1, spacing=4.0, sites=1, seed=2, site_start=3),
                              progress=False)
    assert summary["sites"] == ["D"]
    assert [p.name for p in _case_dirs(tmp_path)][0].startswith("PHANTOM-D-00001-")


def test_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = runner.invoke(app, ["phantom", "--out", str(target), "--cases", "1", "--spacing", "4", "--no-progress"])
    assert result.exit_code == 2
    assert "file.txt" in result.output and "not a folder" in result.output


def test_supervision_fractions_are_honoured_and_labels_withheld(tmp_path):
    out = tmp_path / "mixed"
    result = runner.invoke(app, ["phantom", "--out", str(out), "--cases", "10", "--spacing", "4", "--sites", "2",
                                 "--seed", "1", "--case-start", "4", "--no-progress",
                                 "--supervision", "full=0.3,seg=0.2,wt=0.2,markers=0.3"])
    assert result.exit_code == 0, result.output
    with open(out / "phantom_truth.csv") as fh:
        truth = {r["case_id"]: r for r in csv.DictReader(fh)}
    with open(out / "markers.csv") as fh:
        markers = {r["case_id"]: r for r in csv.DictReader(fh)}
    kinds = [r["supervision"] for r in truth.values()]
    assert {k: kinds.count(k) for k in set(kinds)} == {"full": 3, "seg": 2, "wt": 2, "markers": 3}
    # cases 4..13 of seed 1: they extend a cohort of 4 cases without sharing one
    assert sorted(int(c.split("-")[2]) for c in truth) == list(range(5, 15))
    for cid, row in truth.items():
        files = {p.name.removeprefix(f"{cid}-") for p in (out / cid).iterdir()}
        kind = row["supervision"]
        assert ("seg.nii.gz" in files) == (kind in ("full", "seg")), cid
        assert ("wt.nii.gz" in files) == (kind == "wt"), cid
        withheld = out / "withheld_labels" / cid / f"{cid}-seg.nii.gz"
        assert withheld.is_file() == (kind in ("wt", "markers")), cid
        # the truth keeps every marker; the markers table hides them on the BraTS-like cases
        assert row["observed_idh"] in ("0", "1")
        assert (markers[cid]["idh"] == "") == (kind == "seg"), cid
        if kind == "wt":
            mask = np.asarray(nib.load(out / cid / f"{cid}-wt.nii.gz").dataobj)
            seg = np.asarray(nib.load(withheld).dataobj)
            assert set(np.unique(mask)) == {0, 1} and np.array_equal(mask > 0, seg > 0)
    # the voxels of case i do not depend on the cohort it is written in
    whole = tmp_path / "whole"
    generate_cohort(whole, PhantomSettings(cases=6, spacing=4.0, sites=2, seed=1), progress=False)
    shared = sorted(set(truth) & {p.name for p in whole.iterdir() if p.is_dir()})
    assert shared and filecmp.cmp(out / shared[0] / f"{shared[0]}-t1c.nii.gz",
                                  whole / shared[0] / f"{shared[0]}-t1c.nii.gz", shallow=False)


@pytest.mark.parametrize("text", ["full=0.5,wt=0.6", "full=0.5,nope=0.5", "full"])
def test_bad_supervision_is_one_line_exit_2(tmp_path, text):
    result = runner.invoke(app, ["phantom", "--out", str(tmp_path / "o"), "--cases", "2", "--supervision", text])
    assert result.exit_code == 2 and "--supervision" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
