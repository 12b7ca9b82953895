from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gliomics.constants import SEQUENCES
from gliomics.errors import GliomicsError, ImageError, InputError, LabelError
from gliomics.io import Case, CaseOptionError, discover_cases, load_case
from gliomics_testing import DEFAULT_AFFINE, make_brats_case, synthetic_seg


def _starts(path: Path | str) -> str:
    return "^" + re.escape(str(path))


def _cohort(tiny_case_dir, n: int = 3, **kwargs) -> Path:
    for i in range(n):
        folder = tiny_case_dir(f"CASE-{i:03d}", seed=i, **kwargs)
    return folder.parent


# ---------------------------------------------------------------- BraTS layout


def test_brats_folder_of_cases(tiny_case_dir) -> None:
    root = _cohort(tiny_case_dir)
    (root / "notes").mkdir()  # a folder without images is not a case
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["CASE-000", "CASE-001", "CASE-002"]
    case = cases[0]
    assert list(case.images) == list(SEQUENCES)
    assert case.images[SEQUENCES[1]] == root / "CASE-000" / f"CASE-000-{SEQUENCES[1]}.nii.gz"
    assert case.seg == root / "CASE-000" / "CASE-000-seg.nii.gz"
    assert case.missing == ()
    assert discover_cases(root, layout="brats") == cases


def test_brats_single_case_folder_and_plain_nii(tmp_path: Path) -> None:
    folder = make_brats_case(tmp_path, "ONE", suffix=".nii")
    cases = discover_cases(folder)
    assert [c.case_id for c in cases] == ["ONE"]
    assert cases[0].images[SEQUENCES[0]].name == f"ONE-{SEQUENCES[0]}.nii"


def test_brats2021_names_convert_labels(tmp_path: Path) -> None:
    folder = tmp_path / "BraTS2021_00001"
    folder.mkdir()
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[0], seg[1], seg[2] = 1, 2, 4
    for tag in ("t1", "t1ce", "t2", "flair"):
        nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), folder / f"BraTS2021_00001_{tag}.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / "BraTS2021_00001_seg.nii.gz")
    (case,) = discover_cases(tmp_path)
    assert list(case.images) == list(SEQUENCES)
    loaded = load_case(case)
    assert sorted(np.unique(loaded.seg)) == [0, 1, 2, 3]


def test_missing_sequence_file(tiny_case_dir) -> None:
    root = _cohort(tiny_case_dir, n=1)
    folder = tiny_case_dir("CASE-009", missing=(SEQUENCES[3],))
    with pytest.raises(InputError, match=_starts(folder) + f".*missing {SEQUENCES[3]}"):
        discover_cases(root)
    cases = discover_cases(root, allow_missing=True)
    assert cases[1].missing == (SEQUENCES[3],)


def test_case_without_any_sequence_is_an_error_even_when_allowed(tiny_case_dir) -> None:
    folder = tiny_case_dir("EMPTY", missing=SEQUENCES)
    with pytest.raises(InputError, match=_starts(folder) + ".*no sequence files"):
        discover_cases(folder.parent, allow_missing=True)


def test_require_seg(tiny_case_dir) -> None:
    folder = tiny_case_dir("NOSEG", with_seg=False)
    assert discover_cases(folder.parent)[0].seg is None
    with pytest.raises(InputError, match=_starts(folder) + ".*no segmentation"):
        discover_cases(folder.parent, require_seg=True)


def test_source_missing_empty_or_unknown_layout(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=_starts(tmp_path / "nope") + ": not found"):
        discover_cases(tmp_path / "nope")
    with pytest.raises(InputError, match=_starts(tmp_path) + ": no cases found"):
        discover_cases(tmp_path)
    with pytest.raises(CaseOptionError, match="unknown layout"):
        discover_cases(tmp_path, layout="bids")
    assert issubclass(CaseOptionError, ValueError) and issubclass(CaseOptionError, GliomicsError)


def test_two_files_for_one_sequence(tiny_case_dir) -> None:
    folder = tiny_case_dir("DUP")
    extra = folder / f"DUP-{SEQUENCES[0]}.nii"
    extra.write_bytes(b"")
    with pytest.raises(InputError, match=f"more than one {SEQUENCES[0]} file"):
        discover_cases(folder.parent)


# ---------------------------------------------------------------- nnU-Net layout


def _nnunet(tmp_path: Path, channel_names: dict | None, labels: dict | None = None, n: int = 2) -> Path:
    root = tmp_path / "Dataset001_Glioma"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    if channel_names is not None:
        labels = labels or {"background": 0, "NETC": 1}
        meta = {"channel_names": channel_names, "labels": labels, "file_ending": ".nii.gz"}
        (root / "dataset.json").write_text(json.dumps(meta))
    for i in range(n):
        for c in range(len(SEQUENCES)):
            data = np.full((8, 8, 8), float(c), np.float32)
            nib.save(nib.Nifti1Image(data, np.eye(4)), root / "imagesTr" / f"GL_{i:03d}_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(synthetic_seg((8, 8, 8)), np.eye(4)), root / "labelsTr" / f"GL_{i:03d}.nii.gz")
    return root


def test_nnunet_dataset_with_channel_names(tmp_path: Path) -> None:
    # MSD / nnU-Net order FLAIR, T1w, T1gd, T2w must land in the gliomics order
    root = _nnunet(tmp_path, {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"})
    cases = discover_cases(root)
    assert [c.case_id for c in cases] == ["GL_000", "GL_001"]
    assert cases[0].images[SEQUENCES[3]].name == "GL_000_0000.nii.gz"
    assert cases[0].images[SEQUENCES[0]].name == "GL_000_0001.nii.gz"
    assert cases[0].seg == root / "labelsTr" / "GL_000.nii.gz"
    loaded = load_case(cases[0])
    assert loaded.image[SEQUENCES.index(SEQUENCES[3])].max() == 0.0  # channel 0 holds FLAIR
    assert loaded.image[1].max() == 2.0


def test_nnunet_label_names_are_converted(tmp_path: Path) -> None:
    labels = {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}
    root = _nnunet(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}, labels=labels, n=1)
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[0], seg[1], seg[2] = 1, 2, 3
    nib.save(nib.Nifti1Image(seg, np.eye(4)), root / "labelsTr" / "GL_000.nii.gz")
    loaded = load_case(discover_cases(root)[0])
    assert (loaded.seg[0] == 2).all() and (loaded.seg[1] == 1).all() and (loaded.seg[2] == 3).all()


def test_nnunet_unknown_channel_names_default_order(tmp_path: Path) -> None:
    root = _nnunet(tmp_path, {"0": "a", "1": "b", "2": "c", "3": "d"})
    case = discover_cases(root, layout="nnunet")[0]
    assert case.images[SEQUENCES[0]].name == "GL_000_0000.nii.gz"


def test_nnunet_images_folder_without_dataset_json(tmp_path: Path) -> None:
    root = _nnunet(tmp_path, None)
    images = root / "imagesTr"
    images.rename(root / "imagesTs")
    (root / "labelsTr").rename(root / "labelsTs")
    cases = discover_cases(root / "imagesTs")
    assert [c.case_id for c in cases] == ["GL_000", "GL_001"]
    assert cases[0].images[SEQUENCES[2]].name == "GL_000_0002.nii.gz"
    assert cases[0].seg == root / "labelsTs" / "GL_000.nii.gz"


def test_nnunet_missing_channel(tmp_path: Path) -> None:
    root = _nnunet(tmp_path, {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"})
    (root / "imagesTr" / "GL_001_0002.nii.gz").unlink()
    with pytest.raises(InputError, match=_starts(root / "imagesTr" / "GL_001") + f".*missing {SEQUENCES[2]}"):
        discover_cases(root)


# ---------------------------------------------------------------- datalist


def test_datalist(tiny_case_dir, tmp_path: Path) -> None:
    root = _cohort(tiny_case_dir, n=3)
    rel = {i: {s: f"brats/CASE-{i:03d}/CASE-{i:03d}-{s}.nii.gz" for s in SEQUENCES} for i in range(3)}
    datalist = {
        "training": [{"image": [rel[0][s] for s in SEQUENCES], "label": "brats/CASE-000/CASE-000-seg.nii.gz"}],
        "validation": [{"image": rel[1], "case_id": "renamed"}],
        "testing": [{"image": [rel[2][s] for s in SEQUENCES]}],
    }
    path = root.parent / "datalist.json"
    path.write_text(json.dumps(datalist))
    cases = discover_cases(path)
    assert [c.case_id for c in cases] == ["CASE-000", "CASE-002", "renamed"]
    assert cases[0].seg == root / "CASE-000" / "CASE-000-seg.nii.gz"
    assert cases[2].images[SEQUENCES[3]] == root / "CASE-001" / f"CASE-001-{SEQUENCES[3]}.nii.gz"
    # with a dataroot the paths are relative to it
    moved = tmp_path / "lists" / "d.json"
    moved.parent.mkdir()
    moved.write_text(json.dumps({"dataroot": str(root.parent), **datalist}))
    assert [c.case_id for c in discover_cases(moved, layout="datalist")] == ["CASE-000", "CASE-002", "renamed"]


def test_datalist_errors(tiny_case_dir) -> None:
    root = _cohort(tiny_case_dir, n=1)
    paths = [f"brats/CASE-000/CASE-000-{s}.nii.gz" for s in SEQUENCES]
    path = root.parent / "d.json"
    path.write_text(json.dumps({"training": [{"image": paths}, {"image": paths}]}))
    with pytest.raises(InputError, match=_starts(path) + r" training\[1\]: duplicate case id 'CASE-000'"):
        discover_cases(path)
    path.write_text(json.dumps({"training": [{"image": paths[:-1] + ["brats/nope.nii.gz"]}]}))
    with pytest.raises(InputError, match=_starts(root / "nope.nii.gz") + ": not found"):
        discover_cases(path)
    path.write_text(json.dumps({"training": [{"image": paths[:2]}]}))
    with pytest.raises(InputError, match=r"'image' must be a list of 4 paths"):
        discover_cases(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match=_starts(path) + ": cannot read JSON"):
        discover_cases(path)


# ---------------------------------------------------------------- manifest


def _manifest(root: Path, rows: list[str], header: str = "case_id," + ",".join(SEQUENCES) + ",seg") -> Path:
    path = root / "manifest.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _row(case_id: str, folder: str, seg: bool = True) -> str:
    cells = [f"{folder}/{case_id}-{s}.nii.gz" for s in SEQUENCES]
    return ",".join([case_id, *cells, f"{folder}/{case_id}-seg.nii.gz" if seg else ""])


def test_manifest(tiny_case_dir) -> None:
    root = _cohort(tiny_case_dir, n=2)
    path = _manifest(root.parent, [_row("CASE-001", "brats/CASE-001", seg=False), _row("CASE-000", "brats/CASE-000")])
    cases = discover_cases(path)
    assert [c.case_id for c in cases] == ["CASE-000", "CASE-001"]
    assert cases[0].seg is not None and cases[1].seg is None
    assert cases[0].images[SEQUENCES[0]].samefile(root / "CASE-000" / f"CASE-000-{SEQUENCES[0]}.nii.gz")
    row = ",".join(["CASE-000", *[f"brats/CASE-000/CASE-000-{s}.nii.gz" for s in SEQUENCES]])
    no_seg_column = _manifest(root.parent, [row], header="case_id," + ",".join(SEQUENCES))
    assert discover_cases(no_seg_column, layout="manifest")[0].seg is None


def test_manifest_missing_columns(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [], header=f"case_id,{SEQUENCES[0]},{SEQUENCES[1]}")
    with pytest.raises(InputError, match=_starts(path) + f": missing column.*{SEQUENCES[2]}, {SEQUENCES[3]}"):
        discover_cases(path)


def test_manifest_path_escaping_root(tiny_case_dir, tmp_path: Path) -> None:
    root = _cohort(tiny_case_dir, n=1)
    sub = root.parent / "lists"
    sub.mkdir()
    path = _manifest(sub, [_row("CASE-000", "../brats/CASE-000")])
    with pytest.raises(InputError, match=_starts(path) + r": row 2 \(case CASE-000\): path '\.\./brats.*outside"):
        discover_cases(path)
    absolute = _manifest(sub, [_row("CASE-000", str(root / "CASE-000"))])
    assert discover_cases(absolute)[0].case_id == "CASE-000"


def test_manifest_given_as_relative_path(tiny_case_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _cohort(tiny_case_dir, n=1)
    _manifest(root.parent, [_row("CASE-000", "brats/CASE-000")])
    monkeypatch.chdir(root / "CASE-000")
    assert discover_cases(Path("..") / ".." / "manifest.csv")[0].case_id == "CASE-000"


def test_manifest_duplicates_missing_files_and_bad_ids(tiny_case_dir) -> None:
    root = _cohort(tiny_case_dir, n=1)
    row = _row("CASE-000", "brats/CASE-000")
    path = _manifest(root.parent, [row, row])
    with pytest.raises(InputError, match=_starts(path) + r": row 3 .*duplicate case id 'CASE-000'.*row 2"):
        discover_cases(path)
    path = _manifest(root.parent, [row.replace(f"CASE-000-{SEQUENCES[1]}", "gone")])
    with pytest.raises(InputError, match=_starts(root / "CASE-000" / "gone.nii.gz") + ": not found.*row 2"):
        discover_cases(path)
    path = _manifest(root.parent, ["../evil" + row[len("CASE-000") :]])
    with pytest.raises(InputError, match="invalid case id"):
        discover_cases(path)


# ---------------------------------------------------------------- load_case


def test_load_case(tiny_case_dir) -> None:
    folder = tiny_case_dir("CASE-000", missing=(SEQUENCES[2],))
    (case,) = discover_cases(folder.parent, allow_missing=True)
    loaded = load_case(case)
    assert loaded.image.shape == (len(SEQUENCES), 16, 16, 12) and loaded.image.dtype == np.float32
    assert loaded.present.tolist() == [s != SEQUENCES[2] for s in SEQUENCES]
    assert not loaded.image[2].any() and loaded.image[0].any()
    assert loaded.seg.dtype == np.uint8 and set(np.unique(loaded.seg)) == {0, 1, 2, 3, 4}
    np.testing.assert_allclose(loaded.affine, DEFAULT_AFFINE)
    assert loaded.spacing == pytest.approx((1.0, 1.0, 1.5))
    assert set(loaded.paths) == {SEQUENCES[0], SEQUENCES[1], SEQUENCES[3], "seg"}
    only = load_case(case, sequences=[SEQUENCES[1]], load_seg=False)
    assert only.present.tolist() == [s == SEQUENCES[1] for s in SEQUENCES] and only.seg is None
    with pytest.raises(CaseOptionError, match="unknown sequence"):
        load_case(case, sequences=["dwi"])
    with pytest.raises(ImageError, match="none of the sequences"):
        load_case(case, sequences=[SEQUENCES[2]])


def test_load_case_shape_mismatch(tiny_case_dir) -> None:
    folder = tiny_case_dir("CASE-000")
    bad = folder / f"CASE-000-{SEQUENCES[2]}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 10), np.float32), DEFAULT_AFFINE), bad)
    with pytest.raises(ImageError, match=_starts(bad) + r": shape \(16, 16, 10\) differs from .*CASE-000-"):
        load_case(discover_cases(folder.parent)[0])


def test_load_case_affine_mismatch_with_seg(tiny_case_dir) -> None:
    folder = tiny_case_dir("CASE-000")
    seg = folder / "CASE-000-seg.nii.gz"
    shifted = DEFAULT_AFFINE.copy()
    shifted[2, 3] += 3.0
    nib.save(nib.Nifti1Image(synthetic_seg(), shifted), seg)
    with pytest.raises(ImageError, match=_starts(seg) + f": affine differs from .*CASE-000-{SEQUENCES[0]}"):
        load_case(discover_cases(folder.parent)[0])


def test_case_rejects_unknown_sequence_keys(tmp_path: Path) -> None:
    with pytest.raises(CaseOptionError):
        Case("X", {"dwi": tmp_path / "x.nii.gz"})
    case = Case("X", {SEQUENCES[3]: tmp_path / "b", SEQUENCES[0]: tmp_path / "a"})
    assert list(case.images) == [SEQUENCES[0], SEQUENCES[3]]
    assert case.missing == (SEQUENCES[1], SEQUENCES[2])


def test_dataset_file_tags_map_through_the_one_alias_table():
    from gliomics.io.cases import sequence_tags

    assert sequence_tags("T1", "T1GD", "T2", "FLAIR") == {"T1": "t1n", "T1GD": "t1c", "T2": "t2w", "FLAIR": "t2f"}
    with pytest.raises(ValueError, match="DWI"):
        sequence_tags("T1", "DWI")


# --- whole-tumour masks ----------------------------------------------------------------------------------------------


def _mask(folder, case_id, values=(0, 1)):
    seg = synthetic_seg()
    mask = np.where(seg > 0, values[1], values[0]).astype(np.uint8)
    path = folder / f"{case_id}-wt.nii.gz"
    nib.save(nib.Nifti1Image(mask, DEFAULT_AFFINE), path)
    return path


def test_whole_tumour_mask_in_every_layout(tiny_case_dir, tmp_path):
    import csv

    folder = tiny_case_dir("EGD-0001", with_seg=False)
    path = _mask(folder, "EGD-0001")
    case = discover_cases(folder.parent)[0]
    assert case.seg is None and case.wt_mask == path
    loaded = load_case(case, load_wt_mask=True)
    assert loaded.seg is None and set(np.unique(loaded.wt_mask)) == {0, 1} and loaded.paths["wt_mask"] == path
    assert load_case(case).wt_mask is None  # only when asked
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "t1n", "t1c", "t2w", "t2f", "seg", "wt_mask"])
        writer.writerow(["EGD-0001", *(case.images[s] for s in ("t1n", "t1c", "t2w", "t2f")), "", path])
    assert discover_cases(manifest)[0].wt_mask == path
    datalist = tmp_path / "d.json"
    datalist.write_text(json.dumps({"training": [{"image": [str(case.images[s]) for s in ("t1n", "t1c", "t2w", "t2f")],
                                                  "wt_mask": str(path)}], "dataroot": "/"}))
    assert discover_cases(datalist)[0].wt_mask == path


def test_whole_tumour_mask_with_other_values_names_the_file(tiny_case_dir):
    folder = tiny_case_dir("EGD-0002", with_seg=False)
    path = _mask(folder, "EGD-0002", values=(0, 2))
    with pytest.raises(LabelError, match=str(path)):
        load_case(discover_cases(folder.parent)[0], load_wt_mask=True)
