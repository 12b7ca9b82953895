"""`gliomics export-nnunet`: the nnU-Net v2 raw dataset passes the checks nnU-Net's own integrity check makes, keeps
the run's patient split, decodes its regions back to BraTS 2024 labels, and refuses bad input leaving nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.constants import LABELS, REGIONS, SEQUENCES
from gliomics.data.cohort import CohortCase, patient_id
from gliomics.data.nnunet_export import nnunet_labels
from gliomics.data.splits import load_splits, make_splits, save_splits
from gliomics.io import discover_cases, load_case
from gliomics_testing import DEFAULT_AFFINE, make_brats_case, synthetic_seg

runner = CliRunner()
SHAPE = (16, 16, 12)
LEGACY = "BraTS2021_00042"  # BraTS 2021 names and labels (ET = 4)
UNCOMPRESSED = "BraTS-GLI-00005-000"  # .nii files, written back as .nii.gz
_IMAGE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})\.nii\.gz$")


def _legacy_seg2024() -> np.ndarray:
    seg = synthetic_seg(SHAPE)
    seg[seg == LABELS["RC"]] = 0  # BraTS 2021 has no resection cavity
    return seg


def _legacy_case(root: Path) -> None:
    """A BraTS 2021 case: ``_t1``, ``_t1ce``, ``_t2``, ``_flair``, and labels 0/1/2/4."""
    folder = root / LEGACY
    folder.mkdir(parents=True)
    seg2024 = _legacy_seg2024()
    legacy = seg2024.copy()
    legacy[seg2024 == LABELS["ET"]] = 4
    rng = np.random.default_rng(7)
    for i, tag in enumerate(("t1", "t1ce", "t2", "flair")):
        volume = (100.0 + 20 * i + rng.normal(0, 5, SHAPE)).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, DEFAULT_AFFINE), folder / f"{LEGACY}_{tag}.nii.gz")
    nib.save(nib.Nifti1Image(legacy, DEFAULT_AFFINE), folder / f"{LEGACY}_seg.nii.gz")


def _cohort(root: Path) -> Path:
    """Eight BraTS 2024 cases of six patients (two with a follow-up, -100), one of them uncompressed, and one
    BraTS 2021 case."""
    data = root / "cohort"
    ids = [f"BraTS-GLI-{p:05d}-000" for p in range(6)] + ["BraTS-GLI-00000-100", "BraTS-GLI-00003-100"]
    for i, case_id in enumerate(ids):
        make_brats_case(data, case_id, shape=SHAPE, seed=i, suffix=".nii" if case_id == UNCOMPRESSED else ".nii.gz")
    _legacy_case(data)
    return data


def _run_splits(data: Path, run: Path, **kwargs) -> Path:
    """A run folder's splits.json, made and written by the same code as `gliomics train`."""
    cohort = [CohortCase(case, None) for case in discover_cases(data)]
    splits = make_splits(cohort, seed=0, **kwargs)
    return save_splits(splits, run / "splits.json", data=[str(data)])


def _export(*args: str):
    return runner.invoke(app, ["export-nnunet", *args])


def _error_lines(result) -> list[str]:
    return [line for line in (result.stderr or "").splitlines() if line.startswith("gliomics: error:")]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temporary folder left


def _region_labels(labels: dict) -> list[int]:
    values = {int(v) for value in labels.values() for v in (value if isinstance(value, list) else [value])}
    return sorted(values)


def _cases(folder: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted(folder.iterdir()):
        match = _IMAGE.match(path.name)
        assert match, f"unexpected file {path.name}"
        found.setdefault(match["case"], []).append(int(match["channel"]))
    return found


def _check_like_nnunet(out: Path) -> tuple[dict, list]:
    """What nnU-Net's verify_dataset_integrity checks, written out: keys, counts, channels, labels, geometry."""
    dataset = json.loads((out / "dataset.json").read_text())
    assert {"labels", "channel_names", "numTraining", "file_ending"} <= set(dataset)
    assert dataset["file_ending"] == ".nii.gz"
    n_channels = len(dataset["channel_names"])
    expected = _region_labels(dataset["labels"])
    assert dataset["labels"]["background"] == 0 and expected[0] == 0
    assert np.all(np.diff(expected) == 1), "nnU-Net needs consecutive labels"
    regions = [v for k, v in dataset["labels"].items() if k != "background"]
    if any(isinstance(v, list) and len(v) > 1 for v in regions):
        assert len(dataset["regions_class_order"]) == len(regions)
    training = _cases(out / "imagesTr")
    labels = sorted(p.name for p in (out / "labelsTr").iterdir())
    assert dataset["numTraining"] == len(training) == len(labels)
    assert labels == sorted(f"{case}.nii.gz" for case in training)
    groups = [("imagesTr", training)]
    if (out / "imagesTs").exists():
        groups.append(("imagesTs", _cases(out / "imagesTs")))
    for folder, cases in groups:
        for case, channels in cases.items():
            assert channels == list(range(n_channels)), (folder, case)
            images = [nib.load(out / folder / f"{case}_{c:04d}.nii.gz") for c in channels]
            ref = nib.load(out / "labelsTr" / f"{case}.nii.gz") if folder == "imagesTr" else images[0]
            for image in images:
                assert image.shape == ref.shape
                assert np.allclose(image.affine, ref.affine)
                assert np.allclose(image.header.get_zooms()[:3], ref.header.get_zooms()[:3])
                assert not np.any(np.isnan(image.get_fdata()))
            if folder == "imagesTr":
                assert set(np.unique(np.asarray(ref.dataobj)).tolist()) <= set(expected), case
    splits_final = json.loads((out / "splits_final.json").read_text())
    for fold in splits_final:
        assert set(fold) == {"train", "val"}
        assert set(fold["train"]) | set(fold["val"]) <= set(training)
        assert not {patient_id(c) for c in fold["train"]} & {patient_id(c) for c in fold["val"]}
    return dataset, splits_final


def _decode(label: np.ndarray, labels: dict, order: list[int]) -> np.ndarray:
    """nnU-Net's conversion of predicted regions back to one label map: each region's label over the earlier ones."""
    regions = [v for k, v in labels.items() if k != "background"]
    out = np.zeros_like(label)
    for region, value in zip(regions, order, strict=True):
        out[np.isin(label, region)] = value
    return out


def _assert_same_content(out: Path, folder: str, case) -> np.ndarray | None:
    """The exported channels hold the case's sequences in SEQUENCES order (a byte copy of a .nii.gz) and its label
    the BraTS 2024 labels gliomics reads from the source; returns the exported label."""
    source = load_case(case)
    for channel, sequence in enumerate(SEQUENCES):
        exported = out / folder / f"{case.case_id}_{channel:04d}.nii.gz"
        assert np.array_equal(nib.load(exported).get_fdata(dtype=np.float32), source.image[channel])
        if case.images[sequence].name.endswith(".nii.gz"):
            assert exported.read_bytes() == case.images[sequence].read_bytes()  # a plain copy
    if folder != "imagesTr":
        assert not (out / "labelsTr" / f"{case.case_id}.nii.gz").exists()
        return None
    label = np.asarray(nib.load(out / "labelsTr" / f"{case.case_id}.nii.gz").dataobj)
    assert np.array_equal(label, source.seg), case.case_id
    return label


def test_export_is_a_dataset_nnunet_accepts_with_the_runs_split(tmp_path):
    data = _cohort(tmp_path)
    splits = _run_splits(data, tmp_path / "run", val_fraction=0.25, test_fraction=0.2)
    run_splits = load_splits(splits)
    assert run_splits["test"], "the split must have test cases for this test"
    out = tmp_path / "nnUNet_raw" / "Dataset501_Glioma"
    result = _export("--data", str(data), "--splits", str(splits), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "nnUNetv2_plan_and_preprocess -d 501" in result.stdout

    dataset, splits_final = _check_like_nnunet(out)
    # the run's split, unchanged: one fold, train and val as in splits.json; test cases in imagesTs only
    assert splits_final == [{"train": run_splits["train"], "val": run_splits["val"]}]
    training = set(_cases(out / "imagesTr"))
    assert training == set(run_splits["train"]) | set(run_splits["val"])
    assert set(_cases(out / "imagesTs")) == set(run_splits["test"])
    assert not training & set(run_splits["test"])
    assert dataset["numTraining"] == len(run_splits["train"]) + len(run_splits["val"])
    # channels in gliomics' SEQUENCES order, named so that gliomics and nnU-Net read them alike
    assert list(dataset["channel_names"].items()) == [("0", "T1"), ("1", "T1ce"), ("2", "T2"), ("3", "FLAIR")]
    # region-based training on gliomics' regions, decoding back to BraTS 2024 labels
    assert list(dataset["labels"]) == ["background", "WT", "TC", "ET", "RC"]
    for name in ("WT", "TC", "ET", "RC"):
        assert dataset["labels"][name] == list(REGIONS[name])
    assert dataset["regions_class_order"] == [2, 1, 3, 4]

    cases = {c.case_id: c for c in discover_cases(data)}
    for case_id in sorted(training):
        label = _assert_same_content(out, "imagesTr", cases[case_id])
        assert np.array_equal(_decode(label, dataset["labels"], dataset["regions_class_order"]), label)
    for case_id in run_splits["test"]:
        _assert_same_content(out, "imagesTs", cases[case_id])

    # gliomics reads the export back as an nnU-Net raw dataset, channels mapped by channel_names
    back = {c.case_id: c for c in discover_cases(out)}
    assert set(back) == training
    some = back[sorted(training)[0]]
    assert [p.name[-len("_0000.nii.gz"):] for p in some.images.values()] == [
        "_0000.nii.gz", "_0001.nii.gz", "_0002.nii.gz", "_0003.nii.gz"]
    assert list(some.images) == list(SEQUENCES) and some.seg is not None
    tests = discover_cases(out / "imagesTs")  # as `gliomics predict -i .../imagesTs` finds them
    assert {c.case_id for c in tests} == set(run_splits["test"])
    assert all(list(c.images) == list(SEQUENCES) and c.seg is None for c in tests)


def test_kfold_run_exports_all_its_folds_and_plain_labels(tmp_path):
    data = _cohort(tmp_path)
    splits = _run_splits(data, tmp_path / "run", folds=3, fold=1)
    raw = json.loads(splits.read_text())
    out = tmp_path / "Dataset502_GliomaCV"
    result = _export("-d", str(data), "-s", str(splits.parent), "-o", str(out), "--labels")
    assert result.exit_code == 0, result.output

    dataset, splits_final = _check_like_nnunet(out)
    assert dataset["labels"] == LABELS and "regions_class_order" not in dataset
    assert len(splits_final) == 3
    everything = {c for fold in raw["folds"] for c in fold}
    for k, fold in enumerate(splits_final):
        assert fold["val"] == raw["folds"][k]
        assert set(fold["train"]) == everything - set(raw["folds"][k])
    assert splits_final[1] == {"train": raw["train"], "val": raw["val"]}  # the run's own fold is nnU-Net's fold 1
    assert set(_cases(out / "imagesTr")) == everything
    cases = {c.case_id: c for c in discover_cases(data)}
    assert {LEGACY, UNCOMPRESSED} <= everything
    legacy = _assert_same_content(out, "imagesTr", cases[LEGACY])
    assert set(np.unique(legacy).tolist()) == {0, 1, 2, 3}  # BraTS 2021's ET (4) is BraTS 2024's 3
    assert np.array_equal(legacy, _legacy_seg2024())
    _assert_same_content(out, "imagesTr", cases[UNCOMPRESSED])
    # time points of one patient share a fold
    patients = [{patient_id(c) for c in fold["val"]} for fold in splits_final]
    assert sum(len(p) for p in patients) == len(set().union(*patients))


def test_evaluate_scores_predictions_named_as_nnunet_names_them(tmp_path):
    data = _cohort(tmp_path)
    splits = _run_splits(data, tmp_path / "run", val_fraction=0.25)
    out = tmp_path / "Dataset503_Eval"
    assert _export("-d", str(data), "-s", str(splits), "-o", str(out)).exit_code == 0
    pred = tmp_path / "nnunet_pred"  # what nnUNetv2_predict writes: <case>.nii.gz, plus its own JSON files
    pred.mkdir()
    for label in (out / "labelsTr").iterdir():
        shutil.copyfile(label, pred / label.name)
    (pred / "dataset.json").write_text((out / "dataset.json").read_text())
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(data), "-o", str(tmp_path / "eval"),
                                 "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["cases"] == len(list(pred.glob("*.nii.gz")))
    for region in REGIONS:
        assert summary["segmentation"][region]["dice"]["mean"] == 1.0


def test_regions_decode_every_brats_label():
    labels, order = nnunet_labels()
    seg = np.arange(len(LABELS), dtype=np.uint8)
    assert np.array_equal(_decode(seg, labels, order), seg)
    for name in ("WT", "TC", "ET", "RC"):
        assert np.array_equal(np.isin(seg, labels[name]), np.isin(seg, REGIONS[name]))


def _write_splits(path: Path, train: list[str], val: list[str], test: list[str] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": train, "val": val, "test": list(test)}))
    return path


IDS = [f"BraTS-GLI-{i:05d}-000" for i in range(4)]


def _small_cohort(root: Path, missing: dict[str, tuple[str, ...]] | None = None, no_seg: tuple[str, ...] = ()) -> Path:
    data = root / "cohort"
    for i, case_id in enumerate(IDS):
        make_brats_case(data, case_id, shape=SHAPE, seed=i, missing=(missing or {}).get(case_id, ()),
                        with_seg=case_id not in no_seg)
    return data


@pytest.mark.parametrize(("missing", "no_seg", "named"), [
    ({IDS[2]: ("t2f",)}, (), "t2f"),
    ({}, (IDS[2],), "no segmentation"),
])
def test_incomplete_case_is_refused_naming_its_folder(tmp_path, missing, no_seg, named):
    data = _small_cohort(tmp_path, missing, no_seg)
    splits = _write_splits(tmp_path / "run" / "splits.json", IDS[:3], IDS[3:])
    out = tmp_path / "Dataset504_Bad"
    result = _export("-d", str(data), "-s", str(splits), "-o", str(out))
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and str(data / IDS[2]) in lines[0] and named in lines[0], result.stderr
    _assert_nothing_written(out)


def test_a_missing_sequence_of_a_test_case_is_refused_too(tmp_path):
    data = _small_cohort(tmp_path, {IDS[3]: ("t1n",)})
    splits = _write_splits(tmp_path / "run" / "splits.json", IDS[:2], IDS[2:3], IDS[3:])
    out = tmp_path / "Dataset505_Bad"
    result = _export("-d", str(data), "-s", str(splits), "-o", str(out))
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and str(data / IDS[3]) in lines[0] and "t1n" in lines[0]
    _assert_nothing_written(out)


@pytest.mark.parametrize(("train", "val", "test", "named"), [
    (IDS[:3] + ["BraTS-GLI-09999-000"], IDS[3:], [], "BraTS-GLI-09999-000"),  # a case not in --data
    (IDS[:3], ["BraTS-GLI-00001-100"], [], "BraTS-GLI-00001"),  # a patient in train and val
    (IDS[:2], IDS[2:3], ["BraTS-GLI-00000-100"], "BraTS-GLI-00000"),  # a patient in train and test
    (IDS, [], [], "no val cases"),
])
def test_bad_split_is_refused_naming_splits_json(tmp_path, train, val, test, named):
    data = _small_cohort(tmp_path)
    make_brats_case(data, "BraTS-GLI-00001-100", shape=SHAPE)
    make_brats_case(data, "BraTS-GLI-00000-100", shape=SHAPE)
    splits = _write_splits(tmp_path / "run" / "splits.json", train, val, test)
    out = tmp_path / "Dataset506_Bad"
    result = _export("-d", str(data), "-s", str(splits), "-o", str(out))
    assert result.exit_code == 2, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and str(splits) in lines[0] and named in lines[0], result.stderr
    _assert_nothing_written(out)


def test_output_folder_rules(tmp_path):
    data = _small_cohort(tmp_path)
    splits = _write_splits(tmp_path / "run" / "splits.json", IDS[:3], IDS[3:])
    wrong = tmp_path / "nnunet_glioma"
    result = _export("-d", str(data), "-s", str(splits), "-o", str(wrong))
    assert result.exit_code == 2 and "DatasetXXX_Name" in result.stderr
    _assert_nothing_written(wrong)

    out = tmp_path / "Dataset507_Twice"
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = _export("-d", str(data), "-s", str(splits), "-o", str(out))
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert (out / "old.txt").is_file()
    result = _export("-d", str(data), "-s", str(splits), "-o", str(out), "--overwrite")
    assert result.exit_code == 0, result.output
    assert not (out / "old.txt").exists() and (out / "dataset.json").is_file()


def test_an_output_folder_holding_the_cohort_is_refused_even_with_overwrite(tmp_path):
    host = tmp_path / "Dataset508_Host"
    data = _small_cohort(host)
    splits = _write_splits(tmp_path / "run" / "splits.json", IDS[:3], IDS[3:])
    result = _export("-d", str(data), "-s", str(splits), "-o", str(host), "--overwrite")
    assert result.exit_code == 2 and "holds the input" in result.stderr
    assert len(discover_cases(data)) == len(IDS)
