"""The per-case HTML report (``<case>.html`` beside ``<case>.json``): overlays, attention maps, Grad-CAM, the numbers.

The report reads what ``gliomics predict`` wrote (``<case>.json`` and ``<case>_seg.nii.gz``) and re-runs the model
once on the input case for the maps (:mod:`gliomics.inference.explanation_maps`). It shows the case id and derived
numbers only: no file paths and no image-header fields, so nothing identifying beyond the id the user chose.
"""

from __future__ import annotations

import base64
import datetime as _dt
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gliomics.constants import MARKER_NAMES, MARKERS, SEQUENCE_NAMES, SEQUENCES
from gliomics.errors import InputError, OutputError
from gliomics.inference.marker_validation import FLAG, flagged
from gliomics.inference.who import DEFAULT_BAND, who_cns5_suggestion
from gliomics.io import Case
from gliomics.io.atomic import write_text_atomic
from gliomics.io.predictions import SEG_SUFFIX, is_number, read_prediction_record, record_paths
from gliomics.report.templates import CASE_TEMPLATE, render

logger = logging.getLogger(__name__)

REPORT_SUFFIX = ".html"
CAVEAT = ("Research tool, not a diagnosis. Segmentations, marker probabilities and the WHO CNS5 suggestion come from "
          "MRI alone, by a model trained for research; they must not guide the care of a patient and must be "
          "confirmed by histology and molecular testing of tissue.")
#: How each marker's call reads: (altered, not altered).
CALL_WORDS: dict[str, tuple[str, str]] = {
    "idh": ("IDH-mutant", "IDH-wildtype"),
    "codel_1p19q": ("1p/19q-codeleted", "1p/19q intact"),
    "tert": ("TERT promoter mutant", "TERT promoter wild-type"),
}


def load_prediction(pred_dir: Path | str, case_id: str) -> tuple[dict[str, Any], Path | None]:
    """Read and check ``<case>.json`` (and find ``<case>_seg.nii.gz``) in a prediction folder.

    Returns:
        The record and the segmentation path (None for a marker-only model, whose record has no volumes).

    Raises:
        InputError: the folder or the JSON is missing, the JSON is invalid or lacks the marker results, or the
            record has volumes but the segmentation file is missing.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    path = pred_dir / f"{case_id}.json"
    if not path.is_file():
        raise InputError(f"{path}: prediction record not found (run `gliomics predict` first)")
    record = read_prediction_record(path, case_id)
    seg = pred_dir / f"{case_id}{SEG_SUFFIX}"
    if record.get("volumes_ml") is not None and not seg.is_file():
        raise InputError(f"{seg}: segmentation missing from the prediction folder (incomplete prediction)")
    return record, (seg if seg.is_file() else None)


def prediction_case_ids(target: Path | str) -> tuple[Path, list[str]]:
    """The prediction folder and case ids of ``target``: a ``<case>.json`` file or a prediction folder."""
    target = Path(target)
    if target.is_file():
        if target.suffix != ".json":
            raise InputError(f"{target}: expected a <case>.json written by `gliomics predict` or its folder")
        return target.parent, [target.stem]
    if not target.is_dir():
        raise InputError(f"{target}: prediction folder not found")
    ids = [p.stem for p in record_paths(target)]
    if not ids:
        raise InputError(f"{target}: no <case>.json in this folder; is it a `gliomics predict` output folder?")
    return target, ids


def _marker_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in MARKERS:
        v = record["markers"].get(m)
        if v is None:
            continue
        altered = v["probability"] >= v["threshold"]
        row = {"name": MARKER_NAMES[m], "probability": v["probability"], "threshold": v["threshold"],
               "call": CALL_WORDS[m][0 if altered else 1]}
        if v.get("calibrated"):
            calls = v.get("calls", {})
            row.update(raw=f"{v['probability_raw']:.4f}", set=" or ".join(v.get("prediction_set") or []) or "empty",
                       rule_out=CALL_WORDS[m][0 if calls.get("rule_out") else 1],
                       rule_in=CALL_WORDS[m][0 if calls.get("rule_in") else 1])
        rows.append(row)
    return rows


def _calibration_context(record: Mapping[str, Any]) -> dict[str, Any]:
    """How the record's calls were fitted, for the report's note."""
    cal = record.get("calibration") or {}
    calibrated = bool(cal) and all(v.get("calibrated") for v in (record.get("markers") or {}).values())
    alpha = cal.get("alpha")
    return {"calibrated": calibrated, "fitted_on": f"the {cal.get('source')} set" if cal else "the validation set",
            "coverage": f"{1 - alpha:.2f}" if alpha is not None else ""}


def who_for_record(record: Mapping[str, Any], band: float = DEFAULT_BAND) -> dict[str, Any] | None:
    """The WHO CNS5 suggestion from a record's marker probabilities and thresholds; None without all three, or where
    the record flags them as not validated on real patients (:mod:`~gliomics.inference.marker_validation`)."""
    markers = record.get("markers") or {}
    if not all(m in markers for m in MARKERS) or flagged(record):
        return None
    undetermined = [m for m in MARKERS if markers[m].get("set_status") == "undetermined"]
    return who_cns5_suggestion({m: markers[m]["probability"] for m in MARKERS},
                               {m: markers[m]["threshold"] for m in MARKERS}, band=band, undetermined=undetermined)


def _marker_flag_note(record: Mapping[str, Any]) -> str | None:
    """The report's warning above the marker table of a record whose marker probabilities are flagged."""
    if not flagged(record):
        return None
    return (f"These marker probabilities are {FLAG}: the model card shows no validation of this model's marker heads "
            "on real patients, so what they mean on this scan is unknown. The WHO CNS5 suggestion is withheld.")


def _cmaf_table(record: Mapping[str, Any]) -> dict[str, Any] | None:
    weights = record.get("mean_cmaf_weight")
    if not weights:
        return None
    seqs = [s for s in SEQUENCES if any(s in row for row in weights.values())]
    return {"sequences": [SEQUENCE_NAMES[s] for s in seqs],
            "rows": {region: {SEQUENCE_NAMES[s]: f"{row[s]:.3f}" for s in seqs if s in row}
                     for region, row in weights.items()}}


QC_CAPTION = ("From `gliomics preprocess` (preprocess/qc.png beside the input case): each sequence on the preprocessed "
              "grid before skull stripping, in three planes through the centre of the brain mask, radiological "
              "convention. Green: the brain mask; magenta: the atlas's brain after registration. The numbers behind "
              "it (brain volume, similarity after registration, coverage, intensity flags, warnings) are in "
              "preprocess/qc.json.")
_CAPTIONS = {
    "overlay": ("Segmentation overlay", "Axial, coronal and sagittal planes through the centroid of the predicted "
                "tumour in the network's grid (RAS{spacing}, cropped to the brain), radiological convention (the "
                "patient's right on the left). BraTS colours: red NETC, green SNFH, yellow ET, blue RC."),
    "cmaf": ("CMAF attention", "Cross-modality attention fusion: the weight α of each sequence at every voxel (the "
             "weights of the present sequences sum to 1). White line: outline of the predicted tumour."),
    "pooling": ("Marker attention pooling", "Where the marker heads pool the encoder features F_ENC (1/8 resolution, "
                "upsampled): the attention-pooling weights, divided by their maximum, over T1ce (or the first "
                "present sequence)."),
    "gradcam": ("Grad-CAM", "Grad-CAM (Captum LayerGradCam) of each marker's logit with respect to F_ENC: the regions "
                "whose features raise the probability of the altered state, divided by the maximum. Coarse (1/8 "
                "resolution, upsampled) and not a proof of what the model relies on."),
}


def preprocess_qc_png(case: Case) -> Path | None:
    """The QC picture ``preprocess/qc.png`` that ``gliomics preprocess`` left in the case's input folder, if any."""
    from gliomics.preprocess.pipeline import TRANSFORM_DIR
    from gliomics.preprocess.quality import QC_PNG

    folders = {p.parent for p in case.images.values()}
    found = [folder / TRANSFORM_DIR / QC_PNG for folder in sorted(folders)]
    return next((p for p in found if p.is_file()), None)


def _qc_figures(path: Path | None) -> list[dict[str, str]]:
    """The QC picture as the report's last figure (none without one, or where it cannot be read)."""
    if path is None:
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        logger.warning("%s: cannot read the preprocessing QC picture (%s)", path, exc.strerror)
        return []
    return [{"title": "Preprocessing quality control", "caption": QC_CAPTION,
             "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii")}]


def build_case_html(record: Mapping[str, Any], maps=None, *, band: float = DEFAULT_BAND,
                    extra_timings: Mapping[str, float] | None = None, qc_png: Path | None = None) -> str:
    """The report of one case as a self-contained HTML page.

    Args:
        record: The ``<case>.json`` record.
        maps: A :class:`~gliomics.inference.explanation_maps.CaseMaps`, or None to show the numbers only.
        band: Indeterminate band of the WHO CNS5 suggestion.
        extra_timings: Seconds of the report's own steps, shown after the prediction's timings.
        qc_png: The case's preprocessing QC picture (:func:`preprocess_qc_png`), embedded after the other figures.
    """
    figures: list[dict[str, str]] = []
    maps_note = None
    if maps is not None:
        from gliomics.report.figures import case_figures

        spacing = ", " + " × ".join(f"{s:g}" for s in maps.spacing) + " mm"
        for key, src in case_figures(maps).items():
            if src is not None:
                title, caption = _CAPTIONS[key]
                figures.append({"title": title, "caption": caption.format(spacing=spacing), "src": src})
        whole = all(s.start == 0 and s.stop == n for s, n in zip(maps.window, maps.image.shape[1:]))
        where = "the whole preprocessed volume" if whole else (
            "a window of " + " × ".join(str(s.stop - s.start) for s in maps.window) + " voxels centred on the "
            "predicted tumour (maps are blank outside it)")
        if maps.from_prediction:
            maps_note = (f"The CMAF and pooling maps are the prediction's own, from its pass over {where}; Grad-CAM "
                         "explains the network's marker heads on the same volume. The numbers above are the "
                         "prediction's.")
        else:
            probs = ", ".join(f"{MARKER_NAMES[m]} {p:.3f}" for m, p in maps.window_markers.items())
            maps_note = (f"The maps come from one pass of the model over {where}; its marker probabilities there: "
                         f"{probs or 'none'}. The numbers above are the prediction's own (with test-time flips if "
                         "`--tta` was used).")
        if maps.gradcam_layer is None and (maps.window_markers or maps.from_prediction):
            maps_note += " Grad-CAM is not available for this model: it has no fused encoder output F_ENC."
    figures.extend(_qc_figures(qc_png))
    timings = {k: float(v) for k, v in (record.get("timings") or {}).items() if is_number(v)}
    timings.update(extra_timings or {})
    present = record.get("sequences_present") or []
    return render(
        CASE_TEMPLATE,
        record={"case_id": record["case_id"]},
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        versions=record.get("versions") or {},
        model=record.get("model") or {"name": "unknown", "checkpoint": None},
        caveat=CAVEAT,
        markers=_marker_rows(record),
        marker_flag=_marker_flag_note(record),
        **_calibration_context(record),
        who=who_for_record(record, band),
        volumes=record.get("volumes_ml"),
        present=[SEQUENCE_NAMES.get(s, s) for s in present],
        missing=[SEQUENCE_NAMES.get(s, s) for s in record.get("sequences_missing") or []],
        cmaf_table=_cmaf_table(record),
        figures=figures,
        maps_note=maps_note,
        timings=timings,
    )


def write_html(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary name renamed into place)."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the report ({exc.strerror})") from exc
    return path


def write_case_report(case: Case, pred_dir: Path | str, predictor, prediction=None, *, out: Path | str | None = None,
                      band: float | None = None) -> Path:
    """Compute the maps of ``case`` and write its report (default ``pred_dir/<case>.html``); returns the path.

    Args:
        case: The input case.
        pred_dir: The folder with ``<case>.json`` and ``<case>_seg.nii.gz``.
        predictor: The loaded :class:`~gliomics.inference.predictor.Predictor` that predicted the case (one run or
            an ensemble, whose maps are its members' mean;
            :func:`~gliomics.inference.explanation_maps.compute_case_maps`).
        prediction: The case's :class:`~gliomics.inference.prediction.Prediction` in memory (``predict --report``):
            its record and arrays are used and nothing is read back. None: the record is read from ``pred_dir``
            and the case predicted again for the maps, with the record's sequences and marker source.
        out: The HTML file; defaults to ``pred_dir/<case>.html``.
        band: Indeterminate band of the WHO CNS5 suggestion (default: the predictor's).
    """
    from gliomics.inference.explanation_maps import compute_case_maps
    from gliomics.inference.prediction import record_options

    if prediction is None:
        record = load_prediction(pred_dir, case.case_id)[0]
        prediction = predictor.predict(case, options=record_options(record))
    else:
        record = prediction.record
    maps = compute_case_maps(predictor, case, prediction)
    start = time.perf_counter()
    html = build_case_html(record, maps, band=predictor.who_band if band is None else band,
                           extra_timings={"report_maps_s": maps.seconds}, qc_png=preprocess_qc_png(case))
    logger.debug("%s: report figures in %.1f s", case.case_id, time.perf_counter() - start)
    path = Path(out) if out is not None else Path(pred_dir) / f"{case.case_id}{REPORT_SUFFIX}"
    return write_html(html, path)
