"""Dataset adapters on tiny fake downloads: BraTS 2024/2021, UCSF-PDGM, EGD, TCGA (manifest + markers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.data.datasets.ucsf_pdgm import CODEL_VALUES, IDH_VALUES
from gliomics.io import discover_cases, load_case, read_markers
from gliomics_testing import DEFAULT_AFFINE, make_brats_case

runner = CliRunner()
SHAPE = (16, 16, 12)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, DEFAULT_AFFINE), path)


def _volume(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 10, SHAPE).astype(np.float32)


def _legacy_seg() -> np.ndarray:
    seg = np.zeros(SHAPE, np.uint8)
    seg[4:12, 4:12, 3:9] = 2
    seg[6:10, 6:10, 4:8] = 4
    seg[7:9, 7:9, 5:7] = 1
    return seg


def _import(*args: str):
    return runner.invoke(app, ["import", *args])


def _manifest(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_brats2024_is_referenced_as_is(tmp_path):
    for i in range(2):
        make_brats_case(tmp_path / "raw", f"BraTS-GLI-0000{i}-000", seed=i)
    result = _import("--format", "brats2024", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    rows = _manifest(tmp_path / "out" / "manifest.csv")
    assert [r["case_id"] for r in rows] == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    assert Path(rows[0]["seg"]).is_absolute() and rows[0]["seg"].endswith("BraTS-GLI-00000-000-seg.nii.gz")
    cases = discover_cases(tmp_path / "out" / "manifest.csv")
    assert load_case(cases[0]).seg.max() == 4
    markers = read_markers(tmp_path / "out" / "markers.csv")
    assert all(r.idh is None and r.tert is None for r in markers.values())


def _brats2021_case(root: Path, case_id: str, seg: np.ndarray) -> None:
    for i, tag in enumerate(("t1", "t1ce", "t2", "flair")):
        _save(root / case_id / f"{case_id}_{tag}.nii.gz", _volume(i))
    _save(root / case_id / f"{case_id}_seg.nii.gz", seg)


def test_brats2021_labels_are_converted_explicitly(tmp_path):
    seg = _legacy_seg()
    _brats2021_case(tmp_path / "raw", "BraTS2021_00001", seg)
    result = _import("--format", "brats2021", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    row = _manifest(tmp_path / "out" / "manifest.csv")[0]
    assert row["seg"] == "labels/BraTS2021_00001-seg.nii.gz" and row["t1c"].endswith("BraTS2021_00001_t1ce.nii.gz")
    converted = np.asarray(nib.load(tmp_path / "out" / row["seg"]).dataobj)
    np.testing.assert_array_equal(converted[seg == 1], 1)  # NCR -> NETC
    np.testing.assert_array_equal(converted[seg == 2], 2)  # ED -> SNFH
    np.testing.assert_array_equal(converted[seg == 4], 3)  # ET -> ET
    np.testing.assert_array_equal(converted[seg == 0], 0)
    np.testing.assert_allclose(nib.load(tmp_path / "out" / row["seg"]).affine, DEFAULT_AFFINE)


def test_brats2021_unexpected_label_is_exit_2_naming_file_and_value(tmp_path):
    seg = _legacy_seg()
    seg[0, 0, 0] = 3
    _brats2021_case(tmp_path / "raw", "BraTS2021_00002", seg)
    result = _import("--format", "brats2021", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "BraTS2021_00002_seg.nii.gz" in result.output and "label values 3" in result.output


UCSF_ROWS = [
    ("UCSF-PDGM-004", "mutated (NOS)", "co-deletion", "45", "M"),
    ("UCSF-PDGM-005", "IDH1 p.R132H", "relative co-deletion", "38", "F"),
    ("UCSF-PDGM-006", "IDH2 p.R172K", "intact", "51", "F"),
    ("UCSF-PDGM-007", "wildtype", "", "67", "M"),
]


def _ucsf(root: Path, rows=UCSF_ROWS) -> Path:
    for cid, *_ in rows:
        number = int(cid.rsplit("-", 1)[1])
        folder = root / f"UCSF-PDGM-{number:04d}_nifti"
        for i, tag in enumerate(("T1", "T1c", "T2", "FLAIR")):
            _save(folder / f"UCSF-PDGM-{number:04d}_{tag}.nii.gz", _volume(i))
        _save(folder / f"UCSF-PDGM-{number:04d}_tumor_segmentation.nii.gz", _legacy_seg())
    table = root / "UCSF-PDGM-metadata_v2.csv"
    with table.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["ID", "Sex", "Age at MRI", "WHO CNS Grade", "IDH", "1p/19q", "MGMT status"])
        for cid, idh, codel, age, sex in rows:
            writer.writerow([cid, sex, age, "4", idh, codel, "negative"])
    return table


def test_ucsf_pdgm_messy_strings_and_id_forms(tmp_path):
    _ucsf(tmp_path / "raw")
    result = _import("--format", "ucsf-pdgm", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    markers = read_markers(tmp_path / "out" / "markers.csv")
    assert sorted(markers) == ["UCSF-PDGM-0004", "UCSF-PDGM-0005", "UCSF-PDGM-0006", "UCSF-PDGM-0007"]
    assert [(m.idh, m.codel_1p19q, m.tert) for m in markers.values()] == [
        (1, 1, None), (1, 1, None), (1, 0, None), (0, None, None)]
    assert markers["UCSF-PDGM-0005"].age == 38 and markers["UCSF-PDGM-0005"].sex == "F"
    assert {m.site for m in markers.values()} == {"UCSF"}
    rows = _manifest(tmp_path / "out" / "manifest.csv")
    assert rows[0]["seg"] == "labels/UCSF-PDGM-0004-seg.nii.gz" and rows[0]["t1c"].endswith("_T1c.nii.gz")
    case = discover_cases(tmp_path / "out" / "manifest.csv")[0]
    assert set(np.unique(load_case(case).seg)) == {0, 1, 2, 3}


def test_ucsf_tables_are_explicit():
    assert IDH_VALUES["idh1 p.r132h"] == 1 and IDH_VALUES["idh2 p.r172k"] == 1 and IDH_VALUES["wildtype"] == 0
    assert CODEL_VALUES["relative co-deletion"] == 1 and CODEL_VALUES["intact"] == 0


def test_unknown_values_are_listed_with_their_file_then_allowed_as_missing(tmp_path):
    table = _ucsf(tmp_path / "raw", [*UCSF_ROWS[:2], ("UCSF-PDGM-006", "IDH3 p.X", "partial loss", "50", "F")])
    out = tmp_path / "out"
    result = _import("--format", "ucsf-pdgm", "-i", str(tmp_path / "raw"), "-o", str(out))
    assert result.exit_code == 2
    line = result.output.strip()
    assert str(table) in line and "'IDH3 p.X'" in line and "'partial loss'" in line and "row 4" in line
    assert "--unknown-as-missing" in line and not out.exists()
    result = _import("--format", "ucsf-pdgm", "-i", str(tmp_path / "raw"), "-o", str(out), "--unknown-as-missing")
    assert result.exit_code == 0, result.output
    record = read_markers(out / "markers.csv")["UCSF-PDGM-0006"]
    assert (record.idh, record.codel_1p19q) == (None, None)


def _egd(root: Path, metadata: dict) -> None:
    for subject in metadata:
        for i, tag in enumerate(("T1", "T1GD", "T2", "FLAIR")):
            _save(root / "SUBJECTS" / subject / f"{tag}.nii.gz", _volume(i))
        _save(root / "SUBJECTS" / subject / "MASK.nii.gz", (_legacy_seg() > 0).astype(np.uint8))
    (root / "metadata.json").write_text(json.dumps(metadata))


def test_egd_minus_one_is_unknown_and_the_mask_is_whole_tumour_only(tmp_path):
    _egd(tmp_path / "raw", {"EGD-0001": {"IDH": 1, "1p19q": -1, "Age": 44.5, "Sex": "M", "Grade": 2},
                            "EGD-0002": {"IDH": 0, "1p19q": 0, "Age": -1, "Sex": "F", "Grade": 4}})
    result = _import("--format", "egd", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    markers = read_markers(tmp_path / "out" / "markers.csv")
    assert (markers["EGD-0001"].idh, markers["EGD-0001"].codel_1p19q, markers["EGD-0001"].tert) == (1, None, None)
    assert (markers["EGD-0002"].idh, markers["EGD-0002"].codel_1p19q, markers["EGD-0002"].age) == (0, 0, None)
    rows = _manifest(tmp_path / "out" / "manifest.csv")
    assert rows[0]["seg"] == "" and rows[0]["wt_mask"].endswith("EGD-0001/MASK.nii.gz")
    assert rows[0]["t1c"].endswith("T1GD.nii.gz")
    assert discover_cases(tmp_path / "out" / "manifest.csv")[0].seg is None


def test_egd_other_codes_are_unknown_values(tmp_path):
    _egd(tmp_path / "raw", {"EGD-0001": {"IDH": 2, "1p19q": 0}})
    result = _import("--format", "egd", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "subject EGD-0001 IDH '2'" in result.output


def _tcga_table(path: Path, rows: list[tuple[str, ...]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["Case", "Tissue.source.site", "IDH.status", "X1p.19q.codeletion", "TERT.promoter.status",
                         "Age..years.at.diagnosis.", "Gender"])
        writer.writerows(rows)
    return path


def test_tcga_table_with_images(tmp_path):
    table = _tcga_table(tmp_path / "pan_glioma.tsv", [
        ("TCGA-02-0001", "MD Anderson", "WT", "non-codel", "Mutant", "44", "female"),
        ("TCGA-DU-5870", "Henry Ford", "Mutant", "codel", "NA", "37", "male"),
        ("TCGA-06-0122", "x", "NA", "NA", "WT", "NA", "male"),
    ])
    make_brats_case(tmp_path / "images", "TCGA-02-0001")
    make_brats_case(tmp_path / "images", "TCGA_DU_5870")
    result = _import("--format", "tcga", "-i", str(table), "-o", str(tmp_path / "out"), "--images",
                     str(tmp_path / "images"))
    assert result.exit_code == 0, result.output
    markers = read_markers(tmp_path / "out" / "markers.csv")
    assert (markers["TCGA-02-0001"].idh, markers["TCGA-02-0001"].codel_1p19q, markers["TCGA-02-0001"].tert) == (0, 0, 1)
    assert (markers["TCGA_DU_5870"].idh, markers["TCGA_DU_5870"].codel_1p19q, markers["TCGA_DU_5870"].tert) == (
        1, 1, None)
    assert markers["TCGA_DU_5870"].site == "DU" and markers["TCGA-06-0122"].idh is None
    assert [r["case_id"] for r in _manifest(tmp_path / "out" / "manifest.csv")] == ["TCGA-02-0001", "TCGA_DU_5870"]


@pytest.mark.parametrize("flag", [False, True])
def test_tcga_unknown_value(tmp_path, flag):
    table = _tcga_table(tmp_path / "t.csv", [("TCGA-02-0001", "", "Mutant?", "codel", "WT", "", "")])
    result = _import("--format", "tcga", "-i", str(table), "-o", str(tmp_path / "out"),
                     *(["--unknown-as-missing"] if flag else []))
    if flag:
        assert result.exit_code == 0 and read_markers(tmp_path / "out" / "markers.csv")["TCGA-02-0001"].idh is None
    else:
        assert result.exit_code == 2 and "IDH.status 'Mutant?'" in result.output and "t.csv" in result.output


def test_unknown_format_is_refused(tmp_path):
    result = _import("--format", "oasis", "-i", str(tmp_path), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2 and "unknown format 'oasis'" in result.output


def test_egd_mask_reaches_the_loss_and_trains_next_to_a_brats_cohort(tmp_path, tiny_case_dir):
    import torch

    from gliomics.data.cohort import build_cohort
    from gliomics.data.transforms import train_transforms
    from gliomics.losses import MultiTaskLoss

    _egd(tmp_path / "raw", {"EGD-0001": {"IDH": 1, "1p19q": 0}, "EGD-0002": {"IDH": 0, "1p19q": 0}})
    assert _import("--format", "egd", "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "egd")).exit_code == 0
    cohort = build_cohort(tmp_path / "egd" / "manifest.csv", tmp_path / "egd" / "markers.csv",
                          require_supervision=True)
    assert [c.supervision for c in cohort] == ["wt_mask+markers"] * 2
    transform = train_transforms((16, 16, 16), modality_dropout=0.0, affine_prob=0.0, blur_noise_prob=0.0,
                                 contrast_prob=0.0)
    transform.set_random_state(seed=0)
    sample = transform({"case": cohort[0].case, "markers": cohort[0].marker_vector()})[0]
    assert sample["supervision"].tolist() == [0.0, 1.0]
    label = torch.as_tensor(sample["label"])[None]
    assert int(label.sum()) > 0 and set(label.unique().tolist()) <= {0, 1}
    # the whole-tumour term scores the network's tumour probability against the mask: low when it matches
    logits = torch.zeros(1, 5, *label.shape[2:])
    logits[:, 0] = torch.where(label[:, 0] > 0, -6.0, 6.0)
    loss = MultiTaskLoss(deep_supervision_weights=(1.0,))
    res = loss({"seg": logits, "markers": None}, {"label": label, "supervision": sample["supervision"][None]})
    flipped = loss({"seg": -logits, "markers": None}, {"label": label, "supervision": sample["supervision"][None]})
    assert 0 <= float(res["wt"]) < 0.1 < float(flipped["wt"])

    # an imported EGD cohort and a BraTS cohort without markers train together
    brats = tiny_case_dir("BraTS-GLI-00001-000").parent
    tiny_case_dir("BraTS-GLI-00002-000", seed=1)
    result = runner.invoke(app, ["train", "--data", str(brats), "--markers", "none",
                                 "--data", str(tmp_path / "egd" / "manifest.csv"),
                                 "--markers", str(tmp_path / "egd" / "markers.csv"), "-o", str(tmp_path / "run"),
                                 "--epochs", "1", "--no-progress", "--set", "train.patch_size=[16, 16, 16]",
                                 "--set", "data.val_fraction=0.0", "--set", "model.params.feature_size=4",
                                 "--set", "model.params.embed_channels=4", "--set", "model.params.swin_heads=[1, 2]",
                                 "--set", "model.params.marker_hidden=8"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["supervision"]["train"]["kinds"] == {"subregions": 2, "wt_mask+markers": 2}
    assert "whole-tumour mask only 2" in result.output
