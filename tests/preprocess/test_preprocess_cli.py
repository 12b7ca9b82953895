"""`gliomics preprocess`: outputs, skipping finished cases, workers, atomic folders and clear errors."""

from __future__ import annotations

import shutil

import nibabel as nib
from typer.testing import CliRunner

from gliomics.cli.main import app
from preprocess_testing import write_raw_case

runner = CliRunner()
TINY_GRID = ["--grid", "40,44,36", "--spacing", "2", "--n4-shrink", "2", "--skull-strip", "atlas", "--no-progress"]


def test_preprocess_writes_cases_and_skips_finished_ones(tmp_path):
    raw = write_raw_case(tmp_path)
    (raw.folder.parent / "markers.csv").write_text("case_id,idh,codel_1p19q,tert\nRAW-001,1,0,\n")
    out = tmp_path / "out"
    args = ["preprocess", "-i", str(raw.folder.parent), "-o", str(out), "--atlas", str(raw.atlas),
            "--mask", str(raw.atlas_mask), *TINY_GRID]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "preprocessed 1 cases" in result.output
    assert nib.load(out / "RAW-001" / "RAW-001-t2f.nii.gz").shape == (40, 44, 36)
    assert (out / "markers.csv").read_text().startswith("case_id,idh")
    assert sorted(p.name for p in out.iterdir()) == ["RAW-001", "markers.csv"]  # no temporary folders left
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "skipped 1 already done" in again.output


def test_skip_registration_with_two_workers(tmp_path):
    raw = write_raw_case(tmp_path)
    shutil.copytree(raw.folder, raw.folder.parent / "RAW-002")
    for path in (raw.folder.parent / "RAW-002").iterdir():
        path.rename(path.with_name(path.name.replace("RAW-001", "RAW-002")))
    out = tmp_path / "out"
    result = runner.invoke(app, ["preprocess", "-i", str(raw.folder.parent), "-o", str(out), "--skip-registration",
                                 "--no-n4", "--zscore", "--workers", "2", *TINY_GRID])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["RAW-001", "RAW-002"]
    assert (out / "RAW-002" / "RAW-002-seg.nii.gz").is_file()


def test_missing_atlas_is_one_line_and_exit_2(tmp_path):
    raw = write_raw_case(tmp_path)
    result = runner.invoke(app, ["preprocess", "-i", str(raw.folder.parent), "-o", str(tmp_path / "out"),
                                 "--atlas", str(tmp_path / "nope.nii.gz"), *TINY_GRID])
    assert result.exit_code == 2
    assert "nope.nii.gz: not found" in result.output
    assert not any((tmp_path / "out").glob("RAW-*"))


def test_bad_grid_is_refused(tmp_path):
    raw = write_raw_case(tmp_path)
    result = runner.invoke(app, ["preprocess", "-i", str(raw.folder.parent), "-o", str(tmp_path / "out"),
                                 "--grid", "40,44"])
    assert result.exit_code == 2 and "--grid" in result.output


def test_keep_going_reports_a_bad_case_and_finishes_the_others(tmp_path):
    raw = write_raw_case(tmp_path)
    bad = raw.folder.parent / "RAW-002"
    bad.mkdir()
    (bad / "RAW-002-t1c.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    args = ["preprocess", "-i", str(raw.folder.parent), "-o", str(out), "--skip-registration", "--no-n4", *TINY_GRID]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "RAW-002-t1c.nii.gz: cannot read image" in result.output
    result = runner.invoke(app, [*args, "--keep-going"])
    assert result.exit_code == 2 and "failed RAW-002" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["RAW-001"]


def test_two_parts_preprocess_each_case_once(tmp_path):
    raw = write_raw_case(tmp_path)
    for name in ("RAW-002", "RAW-003"):
        shutil.copytree(raw.folder, raw.folder.parent / name)
        for path in (raw.folder.parent / name).iterdir():
            path.rename(path.with_name(path.name.replace("RAW-001", name)))
    out = tmp_path / "out"
    done = []
    for k in (0, 1):
        result = runner.invoke(app, ["preprocess", "-i", str(raw.folder.parent), "-o", str(out), "--skip-registration",
                                     "--no-n4", "--num-parts", "2", "--part-id", str(k), *TINY_GRID])
        assert result.exit_code == 0, result.output
        done.append(int(result.output.split("preprocessed ")[1].split()[0]))
    assert sorted(p.name for p in out.iterdir()) == ["RAW-001", "RAW-002", "RAW-003"] and sorted(done) == [1, 2]
    bad = runner.invoke(app, ["preprocess", "-i", str(raw.folder.parent), "-o", str(tmp_path / "x"), "--num-parts",
                              "2", "--part-id", "5", *TINY_GRID])
    assert bad.exit_code == 2 and "--part-id 5" in bad.output and not (tmp_path / "x").exists()
