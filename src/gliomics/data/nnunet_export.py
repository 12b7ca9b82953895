"""A cohort and a run's patient split as an nnU-Net v2 raw dataset (``gliomics export-nnunet``), so that nnU-Net
trains, validates and tests on the same patients as the gliomics run.

The folder written::

    DatasetXXX_Name/
        dataset.json             channel_names, labels (region-based by default), numTraining, file_ending
        splits_final.json        the run's split: one fold, or the K folds of a K-fold run
        imagesTr/<case>_0000.nii.gz … _0003   the train and val cases; channels in SEQUENCES order
        labelsTr/<case>.nii.gz   BraTS 2024 labels 0-4
        imagesTs/<case>_0000.nii.gz …         the test cases of the split, if any

Every exported case is read and checked before it is copied (all four sequences, a segmentation for the training
cases, one shape and affine, no NaN voxels, BraTS labels), and the folder is filled under a temporary name and
renamed into place at the end: bad input leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliomics import __version__
from gliomics.constants import LABELS, REGIONS, SEQUENCE_NAMES, SEQUENCES
from gliomics.data.cohort import patient_id
from gliomics.data.splits import SPLITS_FILE, load_splits
from gliomics.errors import InputError, OutputError
from gliomics.io import Case, check_same_geometry, discover_cases, load_image, load_label, save_image
from gliomics.io.output_folder import check_output_folder, staged_folder

logger = logging.getLogger(__name__)

__all__ = ["FILE_ENDING", "NNUNET_REGIONS", "SPLITS_FINAL", "channel_names", "export_nnunet", "nnunet_folds",
           "nnunet_labels"]

FILE_ENDING = ".nii.gz"
SPLITS_FINAL = "splits_final.json"
#: The regions nnU-Net learns with region-based training (gliomics' :data:`~gliomics.constants.REGIONS`), the
#: encompassing ones first: ``regions_class_order`` writes each region's own label over the ones before it.
NNUNET_REGIONS: tuple[str, ...] = ("WT", "TC", "ET", "RC")
#: nnU-Net v2 finds a dataset by its folder name: ``Dataset`` and a three-digit id, ``_``, a name.
_DATASET_NAME = re.compile(r"^Dataset(?P<id>\d{3})_\S+$")


def channel_names() -> dict[str, str]:
    """nnU-Net's ``channel_names``: channel index → sequence name, in :data:`~gliomics.constants.SEQUENCES` order
    (``_0000`` T1, ``_0001`` T1ce, ``_0002`` T2, ``_0003`` FLAIR). None is ``CT``, so nnU-Net z-scores each."""
    return {str(i): SEQUENCE_NAMES[s] for i, s in enumerate(SEQUENCES)}


def nnunet_labels(regions: bool = True) -> tuple[dict[str, Any], list[int] | None]:
    """nnU-Net's ``labels`` and ``regions_class_order``.

    Args:
        regions: Region-based training on :data:`NNUNET_REGIONS` (sigmoid per region, as BraTS scores); else the
            BraTS 2024 labels themselves (softmax over 0-4) and no ``regions_class_order``.

    Returns:
        ``labels`` (name → value, or name → list of values for a region) and ``regions_class_order``: the label
        placed for each region, in order, so that a predicted region map decodes to BraTS 2024 labels 0-4.
    """
    if not regions:
        return dict(LABELS), None
    labels: dict[str, Any] = {"background": LABELS["background"]}
    order = []
    for i, name in enumerate(NNUNET_REGIONS):
        labels[name] = list(REGIONS[name])
        later = {v for r in NNUNET_REGIONS[i + 1:] for v in REGIONS[r]}
        own = sorted(set(REGIONS[name]) - later)
        if len(own) != 1:  # the regions would not decode to one label map
            raise ValueError(f"region {name} {REGIONS[name]} leaves {own} after the regions that follow it")
        order.append(own[0])
    return labels, order


def _splits_path(splits: Path) -> Path:
    return splits / SPLITS_FILE if splits.is_dir() else splits


def nnunet_folds(splits: Path | str) -> tuple[list[dict[str, list[str]]], list[str]]:
    """nnU-Net folds (``[{"train": [...], "val": [...]}, ...]``) and test cases from a run's ``splits.json``.

    A K-fold run's file holds the whole assignment under ``folds``: fold *k* validates on ``folds[k]`` and trains on
    the others, as gliomics' fold *k* does. Otherwise the run's ``train`` and ``val`` are the one fold.

    Raises:
        InputError: An unreadable file, a malformed ``folds``, an empty train or val, or a patient in two parts of
            a fold (or in a fold and the test cases), naming the file.
    """
    path = _splits_path(Path(splits))
    parts = load_splits(path)
    raw = json.loads(path.read_text()).get("folds")
    if raw is not None:
        if not isinstance(raw, list) or len(raw) < 2 or not all(
                isinstance(f, list) and all(isinstance(c, str) for c in f) for f in raw):
            raise InputError(f"{path}: 'folds' must be a list of at least two lists of case ids")
        folds = [{"train": sorted({c for j, f in enumerate(raw) if j != k for c in f}), "val": list(dict.fromkeys(f))}
                 for k, f in enumerate(raw)]
    else:
        folds = [{"train": list(dict.fromkeys(parts["train"])), "val": list(dict.fromkeys(parts["val"]))}]
    test = list(dict.fromkeys(parts["test"]))
    test_patients = {patient_id(c): c for c in test}
    for k, fold in enumerate(folds):
        for name in ("train", "val"):
            if not fold[name]:
                raise InputError(f"{path}: fold {k} has no {name} cases (nnU-Net trains and validates on each fold)")
        train = {patient_id(c): c for c in fold["train"]}
        for case_id in fold["val"]:
            if patient_id(case_id) in train:
                raise InputError(f"{path}: patient {patient_id(case_id)!r} is in both train "
                                 f"({train[patient_id(case_id)]}) and val ({case_id}) of fold {k}")
        for case_id in (*fold["train"], *fold["val"]):
            if patient_id(case_id) in test_patients:
                raise InputError(f"{path}: patient {patient_id(case_id)!r} is in both fold {k} ({case_id}) and test "
                                 f"({test_patients[patient_id(case_id)]})")
    return folds, test


def _check_output(out: Path, sources: Sequence[Path], overwrite: bool) -> str:
    """The dataset id of ``out``; refuse a name nnU-Net cannot find, a folder holding an input, or (without
    ``overwrite``) a non-empty folder."""
    match = _DATASET_NAME.match(out.name)
    if not match:
        raise OutputError(f"{out}: nnU-Net v2 finds a dataset by its folder name DatasetXXX_Name (XXX three digits), "
                          "e.g. Dataset501_Glioma")
    resolved = out.resolve()
    for source in sources:
        if resolved == source.resolve() or resolved in source.resolve().parents:
            raise OutputError(f"{out}: holds the input {source}; choose another output folder")
    check_output_folder(out, overwrite)
    return match["id"]


def _discover(data: Sequence[Path], layout: str) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    where: dict[str, Path] = {}
    for source in data:
        for case in discover_cases(source, layout=layout, allow_missing=True):
            if case.case_id in cases:
                raise InputError(f"{source}: case {case.case_id!r} is also in {where[case.case_id]}")
            cases[case.case_id], where[case.case_id] = case, source
    return cases


def _check_complete(case: Case, *, labelled: bool) -> None:
    """All four sequences (and a segmentation for a training case), before any file is read."""
    folder = next(iter(case.images.values())).parent
    if case.missing:
        names = ", ".join(f"{s} ({SEQUENCE_NAMES[s]})" for s in case.missing)
        raise InputError(f"{folder}: case {case.case_id!r} has no {names} image; nnU-Net needs all "
                         f"{len(SEQUENCES)} channels of every exported case")
    if labelled and case.seg is None:
        mask = " (only a whole-tumour mask)" if case.wt_mask is not None else ""
        raise InputError(f"{folder}: case {case.case_id!r} has no segmentation{mask}; nnU-Net needs subregion labels "
                         "for every train and val case")


def _copy(source: Path, destination: Path, final: Path) -> None:
    try:
        shutil.copyfile(source, destination)
    except OSError as exc:
        raise OutputError(f"{final}: cannot write ({type(exc).__name__}: {exc})") from exc


def _export_case(case: Case, tmp: Path, out: Path, images_dir: str, labels_dir: str | None) -> None:
    """Read and check one case, then copy its images (and write its label) into ``tmp``."""
    images = {s: load_image(case.images[s]) for s in SEQUENCES}
    label = load_label(case.seg, label_map=case.label_map) if labels_dir is not None and case.seg else None
    check_same_geometry({**images, **({"seg": label} if label is not None else {})})
    for i, sequence in enumerate(SEQUENCES):
        image = images[sequence]
        name = f"{images_dir}/{case.case_id}_{i:04d}{FILE_ENDING}"
        if not np.any(image.array):
            logger.warning("%s: every voxel is zero; nnU-Net gets a blank channel %d", image.name, i)
        if case.images[sequence].name.lower().endswith(FILE_ENDING):
            _copy(case.images[sequence], tmp / name, out / name)
        else:
            save_image(image.array, image.affine, tmp / name, header=image.header)
    if label is not None:
        name = f"{labels_dir}/{case.case_id}{FILE_ENDING}"
        if case.label_map is None and case.seg.name.lower().endswith(FILE_ENDING):
            _copy(case.seg, tmp / name, out / name)
        else:  # other label values (BraTS 2021) rewritten as BraTS 2024, or an uncompressed file
            save_image(label.array, label.affine, tmp / name, header=label.header, dtype=np.uint8)


def _check_split_cases(cases: dict[str, Case], training: Sequence[str], test: Sequence[str], splits: Path,
                       sources: Sequence[Path]) -> None:
    """Refuse a split naming cases that are not in ``data``, or whose cases lack a sequence (or, for training
    cases, the segmentation)."""
    unknown = [c for c in (*training, *test) if c not in cases]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"{splits}: {len(unknown)} case(s) of the split are not in "
                         f"{', '.join(map(str, sources))}: {shown}")
    for case_id in training:
        _check_complete(cases[case_id], labelled=True)
    for case_id in test:
        _check_complete(cases[case_id], labelled=False)


def _dataset_json(out: Path, splits: Path, sources: Sequence[Path], regions: bool, n_training: int,
                  n_test: int) -> dict[str, Any]:
    """The content of nnU-Net's ``dataset.json``, with a ``gliomics`` entry recording what was exported."""
    labels, order = nnunet_labels(regions)
    return {
        "name": out.name,
        "description": f"exported by gliomics {__version__} with the split of {splits.absolute()}",
        "channel_names": channel_names(),
        "labels": labels,
        **({"regions_class_order": order} if order is not None else {}),
        "numTraining": n_training,
        "file_ending": FILE_ENDING,
        # not read by nnU-Net: what gliomics exported
        "gliomics": {"version": __version__, "sequences": dict(zip(channel_names(), SEQUENCES, strict=True)),
                     "brats2024_labels": dict(LABELS), "splits": str(splits.absolute()),
                     "data": [str(s.absolute()) for s in sources], "numTest": n_test},
    }


def export_nnunet(data: Sequence[Path | str] | Path | str, splits: Path | str, out: Path | str, *,
                  layout: str = "auto", regions: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Write the cases of a run's split as an nnU-Net v2 raw dataset.

    Args:
        data: The cohort(s) the run was trained on (any layout).
        splits: The run's ``splits.json``, or the run folder holding it.
        out: The dataset folder, ``.../nnUNet_raw/DatasetXXX_Name``.
        layout: Layout of ``data`` (see :func:`~gliomics.io.discover_cases`).
        regions: Region-based training (WT, TC, ET, RC); else plain BraTS 2024 labels.
        overwrite: Replace a non-empty ``out``.

    Returns:
        What was written: ``out``, ``dataset_id``, ``training`` and ``test`` case counts, ``folds`` (train and
        val counts per fold) and ``unused`` (cases of ``data`` in no part of the split).

    Raises:
        InputError: A case of the split not in ``data``, a case missing a sequence (or a train/val case its
            segmentation), unreadable or mismatched images, a leaking split.
        OutputError: An output folder nnU-Net would not find, or that holds an input, or is not empty.
    """
    sources = [Path(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    splits, out = _splits_path(Path(splits)), Path(out)
    dataset_id = _check_output(out, [*sources, splits], overwrite)
    folds, test = nnunet_folds(splits)
    cases = _discover(sources, layout)
    training = sorted({c for fold in folds for part in fold.values() for c in part})
    _check_split_cases(cases, training, test, splits, sources)
    unused = len(cases) - len(training) - len(test)
    if unused:
        logger.info("%d case(s) of %s are in no part of %s; not exported", unused,
                    ", ".join(map(str, sources)), splits)

    dataset = _dataset_json(out, splits, sources, regions, len(training), len(test))
    try:
        with staged_folder(out, overwrite) as tmp:
            for folder in ("imagesTr", "labelsTr", *(("imagesTs",) if test else ())):
                (tmp / folder).mkdir()
            for i, case_id in enumerate(training, 1):
                logger.debug("training case %d/%d: %s", i, len(training), case_id)
                _export_case(cases[case_id], tmp, out, "imagesTr", "labelsTr")
            for case_id in test:
                _export_case(cases[case_id], tmp, out, "imagesTs", None)
            # json.dumps keeps the key order: regions_class_order follows the order of the regions in labels
            (tmp / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
            (tmp / SPLITS_FINAL).write_text(json.dumps(folds, indent=2) + "\n")
    except OSError as exc:  # the temporary folder or its sub-folders cannot be created
        raise OutputError(f"{out}: cannot write the dataset ({type(exc).__name__}: {exc})") from exc
    logger.info("%s: %d training and %d test cases, %d fold(s)", out, len(training), len(test), len(folds))
    return {"out": out, "dataset_id": dataset_id, "training": len(training), "test": len(test),
            "folds": [(len(f["train"]), len(f["val"])) for f in folds], "unused": unused, "regions": regions}
