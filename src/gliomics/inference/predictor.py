"""The Predictor, nnU-Net style: construct, ``load(run_dir)``, then ``predict`` / ``predict_case`` /
``predict_folder``.

``predict`` returns a :class:`~gliomics.inference.prediction.Prediction`; ``predict_case`` also exports it: per case
``<case>_seg.nii.gz`` in the input geometry, optionally ``<case>_probabilities.nii.gz``, and ``<case>.json`` with
marker probabilities, calls, volumes, mean CMAF weights per region, timings and versions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.config import RunConfig
from gliomics.constants import LABELS, MARKERS, REGIONS, SEQUENCES, TUMOUR_LABELS
from gliomics.data.transforms import sequences_present
from gliomics.errors import CheckpointError, GliomicsError, OutputError
from gliomics.inference.calibration import apply_calibration
from gliomics.inference.engine import (
    average_outputs,
    forward_volume,
    forward_with_tta,
    join_passes,
    marker_probabilities,
    pad_multiple,
    single_pass,
)
from gliomics.inference.marker_readout import MarkerReadout, replace_head_markers
from gliomics.inference.marker_validation import (
    apply_marker_flag,
    ensemble_marker_validation,
    is_phantom_case,
    read_marker_validation,
)
from gliomics.inference.postprocess import class_argmax, postprocess_labels, remove_small_components
from gliomics.inference.prediction import Prediction, export_prediction
from gliomics.inference.uncertainty import case_uncertainty, entropy_map, review_reason
from gliomics.inference.who import DEFAULT_BAND, who_cns5_suggestion
from gliomics.io import Case, discover_cases, voxel_spacing
from gliomics.io.partition import select_part
from gliomics.io.predictions import RECORD_SUFFIX
from gliomics.labels import region_mask
from gliomics.provenance import config_digest, versions
from gliomics.runtime.checkpoint import CALIBRATION_FILE, checkpoint_file, fold_runs, load_network
from gliomics.runtime.hardware import autocast, configure_cpu, describe, resolve_device, resolve_precision

logger = logging.getLogger(__name__)
CAVEAT = ("Research tool, not a diagnosis: marker probabilities come from MRI alone and must be confirmed by "
          "molecular testing of tissue.")


class Predictor:
    """Segment a case and predict its markers with a trained run.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.
        tta: Average over a left-right flip.
        overlap: Sliding-window overlap when a volume does not fit one window.
        save_probabilities: Also write the softmax as a 5-channel NIfTI.
        save_uncertainty: Also write the voxel-wise uncertainty (normalised entropy of the averaged softmax,
            :mod:`~gliomics.inference.uncertainty`).
        sequences: Use only these sequences (the others are treated as missing).
        min_component_mm3: Whole-tumour and RC components smaller than this are removed.
        label_minimums: Relabel a tumour label whose whole volume is below the run's minimum for it (fitted on
            its validation cases, :func:`~gliomics.inference.postprocess.fit_min_label_volumes`).
        component_minimums: Give each component of a tumour label smaller than the run's minimum component volume
            for it (fitted on its validation cases, :func:`~gliomics.inference.postprocess.fit_min_component_volumes`)
            to the next most probable label.
        detached_cavities: Make each resection-cavity component that touches no tumour label background, in a case
            that has a tumour (:func:`~gliomics.inference.postprocess.relabel_detached_cavities`).
        resample_probabilities: Where the input's voxels differ from the working grid's, resample the class
            probabilities to the input grid (linear) and take the argmax and the post-processing there, as nnU-Net
            does; ``False`` takes them in the working grid and maps the labels back by nearest neighbour.
        marker_readout: Where the run has a marker readout (:mod:`~gliomics.inference.marker_readout`, fitted on
            its training split), its marker probabilities replace the network heads'.
        who_band: Indeterminate band of the WHO CNS5 suggestion in the JSON (:mod:`gliomics.inference.who`).
        crop: Crop to the bounding box of the head before the network (the fast path); ``False`` runs the network
            on the whole padded volume, for comparison.
        precision: ``auto`` (bf16 autocast where the hardware computes in bf16 natively), ``fp32`` or ``bf16``.
        threads: CPU threads (default: every usable core; under ``torchrun``, the rank's share of them).
        engine: ``torch``, or ``onnx``: the network exported by ``gliomics export-onnx`` (``model.onnx`` in the run
            folder) run by onnxruntime on the CPU in fp32 (:mod:`~gliomics.inference.onnx_engine`); the rest of the
            run (preprocessing, thresholds, calibration) is read from the run folder alike.
        degrade: Applied to each loaded case just before the z-score (a
            :class:`~gliomics.data.degradations.DegradeSequenced`), to measure robustness to a degraded sequence.
    """

    def __init__(self, device: str = "auto", *, tta: bool = False, overlap: float = 0.25,
                 save_probabilities: bool = False, save_uncertainty: bool = False,
                 sequences: list[str] | None = None,
                 min_component_mm3: float = 50.0, label_minimums: bool = True, component_minimums: bool = True,
                 detached_cavities: bool = True, resample_probabilities: bool = True, marker_readout: bool = True,
                 who_band: float = DEFAULT_BAND,
                 crop: bool = True, precision: str = "auto", threads: int | None = None,
                 engine: str = "torch", degrade: Callable[[dict], dict] | None = None) -> None:
        from gliomics.inference.onnx_engine import engine_settings

        device, precision = engine_settings(engine, device, precision)
        self.engine = engine
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.tta, self.overlap = tta, overlap
        self.save_probabilities, self.save_uncertainty = save_probabilities, save_uncertainty
        self.sequences = sequences
        self.min_component_mm3 = min_component_mm3
        self.label_minimums = label_minimums
        self.component_minimums = component_minimums
        self.detached_cavities = detached_cavities
        self.resample_probabilities = resample_probabilities
        self.marker_readout = marker_readout
        self.who_band = who_band
        self.crop = crop
        self.threads = threads
        self.degrade = degrade
        self.model: torch.nn.Module | None = None
        self.members: list[torch.nn.Module] = []
        #: each member's marker readout, or None
        self.readouts: list[MarkerReadout | None] = []
        self.config: RunConfig | None = None
        self.thresholds: dict[str, float] = {}
        self.calibration: dict[str, Any] = {}
        self.min_label_mm3: dict[str, float] = {}
        self.min_label_component_mm3: dict[str, float] = {}
        self.checkpoint: Path | None = None
        #: the run's model card on its marker heads (:mod:`~gliomics.inference.marker_validation`)
        self.marker_validation: dict[str, Any] = {"validated_on_real_patients": False, "evidence": None}
        self.transform = None

    def load(self, run_dir: Path | str, checkpoint: str = "best") -> Predictor:
        """Load ``best.pt`` (or ``last.pt``) of a run folder, a checkpoint file given directly, or every fold run of
        a K-fold ensemble folder (``fold_0``, …), whose probabilities are then averaged."""
        run_dir = Path(run_dir)
        folds = fold_runs(run_dir)
        if folds:
            return self._load_ensemble(run_dir, folds, checkpoint)
        self._load_run(run_dir, checkpoint)
        self.members, self.readouts = [self.network], [self.readout]
        return self

    def _load_ensemble(self, folder: Path, folds: list[Path], checkpoint: str) -> Predictor:
        """The fold runs of ``folder``: one preprocessing (they must share it), their marker thresholds and label
        minimums averaged, and the ensemble's own calibration (``calibration.json``, fitted out of fold)."""
        members, models, thresholds, minimums, component_minimums, readouts = [], [], [], [], [], []
        first = None
        for run in folds:
            self._load_run(run, checkpoint)
            cfg = self.config
            key = (cfg.data.working_spacing, cfg.train.patch_size, cfg.inference.whole_volume_factor)
            if first is not None and key != first:
                raise CheckpointError(f"{run}: its working spacing, patch size or whole-volume factor differ from "
                                      f"{folds[0]}'s; the runs of an ensemble must share them")
            first = key
            members.append(self.network)
            readouts.append(self.readout)
            models.append(self.model)
            thresholds.append(self.thresholds)
            minimums.append(self.min_label_mm3)
            component_minimums.append(self.min_label_component_mm3)
        self.members, self.model, self.readouts = members, models[0], readouts
        self.thresholds = {m: float(np.mean([t[m] for t in thresholds])) for m in MARKERS}
        self.min_label_mm3 = _median_minimums(minimums)
        self.min_label_component_mm3 = _median_minimums(component_minimums)
        path = folder / CALIBRATION_FILE
        self.calibration = json.loads(path.read_text()) if path.is_file() else {}
        self.marker_validation = ensemble_marker_validation(folds)
        self.checkpoint = folder
        return self

    def _load_run(self, run_dir: Path, checkpoint: str) -> None:
        path = checkpoint_file(run_dir, checkpoint)
        model, self.config, state = load_network(path)
        if self.device.type == "cpu":
            configure_cpu(self.threads)
        self.model = model.to(self.device).eval()
        from gliomics.inference.onnx_engine import onnx_network

        # what the forward passes call: the torch module, or its exported graph run by onnxruntime
        self.network = self.model if self.engine == "torch" else onnx_network(path, self.model, torch.get_num_threads())
        self.thresholds = {m: float(state.get("thresholds", {}).get(m, 0.5)) for m in MARKERS}
        self.calibration = dict(state.get("calibration") or {})
        self.min_label_mm3 = {k: float(v) for k, v in state.get("min_label_mm3", {}).items()}
        self.min_label_component_mm3 = {k: float(v) for k, v in state.get("min_component_mm3", {}).items()}
        self.readout = None
        if state.get("marker_readout"):
            try:
                self.readout = MarkerReadout.from_dict(state["marker_readout"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: {exc}") from exc
        self.marker_validation = read_marker_validation(path.parent)
        self.checkpoint = path
        from gliomics.data.transforms import inference_transforms

        self.transform = inference_transforms(spacing=self.config.data.working_spacing, sequences=self.sequences,
                                              divisible=pad_multiple(self.model), crop=self.crop,
                                              degrade=self.degrade)

    def hardware(self) -> dict[str, Any]:
        """Where the predictions run: device, CPU model, threads, precision and engine (recorded in every
        ``<case>.json``)."""
        engine = self.members[0].hardware() if self.engine == "onnx" and self.members else {"engine": self.engine}
        return {**describe(self.device, self.precision), **engine}

    def _to_input_geometry(self, volume: torch.Tensor, image, *, nearest: bool) -> np.ndarray:
        """Undo the preprocessing (padding, crop, spacing, orientation) of ``image`` on a channel-first volume."""
        from monai.data import MetaTensor
        from monai.transforms import Invertd

        pred = MetaTensor(volume, meta=dict(image.meta))
        pred.applied_operations = list(image.applied_operations)
        inverse = Invertd(keys="pred", transform=self.transform, orig_keys="image", nearest_interp=nearest)
        return np.asarray(inverse({"pred": pred, "image": image})["pred"])

    def forward(self, case: Case, timings: dict[str, float] | None = None) -> tuple[dict, dict]:
        """Preprocess one case and run the network on it (with flip TTA if asked): the preprocessed sample and the
        network's outputs (:func:`~gliomics.inference.engine.forward_volume`), averaged over the passes (flips and
        ensemble members), with ``passes`` (what each said, :func:`~gliomics.inference.engine.single_pass`) and
        ``uncertainty`` (:func:`~gliomics.inference.uncertainty.case_uncertainty`, None with one pass).
        ``timings`` receives the seconds of each step."""
        if self.model is None or self.config is None:
            raise RuntimeError("call load() before forward()")
        timings = {} if timings is None else timings
        t = time.perf_counter()
        data = self.transform({"case": case})
        timings["load_preprocess_s"] = time.perf_counter() - t
        t = time.perf_counter()
        kwargs = {"roi_size": self.config.train.patch_size, "overlap": self.overlap,
                  "whole_volume_factor": self.config.inference.whole_volume_factor}
        x, p = data["image"].as_tensor()[None].to(self.device), data["present"][None].to(self.device)
        outs = []
        voxel_mm3 = float(np.prod(voxel_spacing(data["image"].affine)))
        for model, readout in zip(self.members, self.readouts):
            with autocast(self.device, self.precision):
                out = forward_with_tta(model, x, p, **kwargs) if self.tta else forward_volume(model, x, p, **kwargs)
            out.setdefault("passes", single_pass(out["probs"], out["markers"]))
            if self.marker_readout and readout is not None and out["passes"]["labels"] is not None:
                replace_head_markers(readout, out, x[0], voxel_mm3)
            outs.append(out)
        res = outs[0] if len(outs) == 1 else average_outputs(outs)
        res["passes"] = join_passes([o["passes"] for o in outs])
        res["uncertainty"] = None
        if res["passes"]["labels"] is not None:
            res["uncertainty"] = case_uncertainty(res["passes"]["labels"], res["passes"]["markers"],
                                                  self.passes_source())
        timings["network_s"] = time.perf_counter() - t
        return data, res

    def _postprocess(self, probs: torch.Tensor, voxel_mm3: float) -> tuple[torch.Tensor, dict[str, Any]]:
        """The argmax of ``probs`` after the run's post-processing (:func:`postprocess_labels`), and what was done."""
        return postprocess_labels(
            probs, class_argmax(probs).to(torch.uint8), voxel_mm3,
            min_component_mm3=self.min_label_component_mm3 if self.component_minimums else None,
            min_label_mm3=self.min_label_mm3 if self.label_minimums else None,
            detached_cavities=self.detached_cavities)

    def markers_from(self) -> str:
        """What the marker probabilities come from: the run's marker readout or the network's heads."""
        return "readout" if self.marker_readout and any(r is not None for r in self.readouts) else "network heads"

    def passes_source(self) -> str:
        """What the passes of a prediction are, in words."""
        parts = ([f"{len(self.members)} fold models"] if len(self.members) > 1 else []) + (["flip TTA"] if self.tta
                                                                                          else [])
        return " × ".join(parts) or "one pass"

    def predict(self, case: Case) -> Prediction:
        """Predict one case; nothing is written (:func:`~gliomics.inference.prediction.export_prediction` does)."""
        if self.model is None or self.config is None:
            raise RuntimeError("call load() before predict()")
        timings: dict[str, float] = {}
        data, res = self.forward(case, timings)
        image = data["image"]
        present = data["present"]
        t = time.perf_counter()
        probs = res["probs"][0].float().cpu() if res["probs"] is not None else None
        used = sequences_present(present)
        record: dict[str, Any] = {"case_id": case.case_id, "sequences_present": used,
                                  "sequences_missing": [s for s in SEQUENCES if s not in used]}
        alpha = res["alpha"][0].float().cpu() if res.get("alpha") is not None else None
        pool = res["pool_weights"][0].float().cpu() if res.get("pool_weights") is not None else None
        prediction = Prediction(case_id=case.case_id, record=record, image=image, present=present, probs=probs,
                                alpha=alpha, pool_weights=pool)
        if probs is not None:
            labels, post = self._postprocess(probs, float(np.prod(voxel_spacing(image.affine))))
            record["mean_cmaf_weight"] = _mean_alpha(alpha, labels, present)
            affine = np.asarray(image.meta["original_affine"], dtype=np.float64)
            spacing = voxel_spacing(affine)
            on_input_grid = self.resample_probabilities and not np.allclose(spacing, voxel_spacing(image.affine),
                                                                            atol=1e-3)
            soft = None
            if self.save_probabilities or on_input_grid:
                soft = self._to_input_geometry(probs, image, nearest=False).astype(np.float32)
            if on_input_grid:
                # the class probabilities resampled to the input grid, then the argmax and post-processing there
                seg_t, post = self._postprocess(torch.from_numpy(soft), float(np.prod(spacing)))
                seg = seg_t.numpy().astype(np.uint8)
            else:
                seg = self._to_input_geometry(labels[None], image, nearest=True)[0].astype(np.uint8)
            if post:
                record["postprocessing"] = post
            seg = remove_small_components(seg, spacing, min_volume_mm3=self.min_component_mm3)
            voxel_ml = float(np.prod(spacing)) / 1000.0
            record["volumes_ml"] = {r: round(float(region_mask(seg, r).sum()) * voxel_ml, 3) for r in REGIONS}
            prediction.labels, prediction.seg, prediction.affine = labels, seg, affine
            if self.save_probabilities:
                prediction.probabilities = np.moveaxis(soft, 0, -1)
            if self.save_uncertainty:
                prediction.entropy = self._to_input_geometry(entropy_map(probs)[None], image,
                                                             nearest=False)[0].astype(np.float32)
        record.update(self.marker_record(marker_probabilities(res["markers"]), res.get("uncertainty")))
        if res["markers"]:
            record["markers_from"] = self.markers_from()
        apply_marker_flag(record, self.marker_validation, is_phantom_case(case))
        timings["postprocess_write_s"] = time.perf_counter() - t
        timings["total_s"] = sum(timings.values())
        record["timings"] = {k: round(v, 3) for k, v in timings.items()}
        record["hardware"] = self.hardware()
        record["model"] = {"name": self.config.model.name, "checkpoint": self.checkpoint.name if self.checkpoint
                           else None, "config_sha256": config_digest(self.config), "train_seed": self.config.train.seed,
                           "ensemble_members": len(self.members)}
        record["versions"] = versions()
        record["caveat"] = CAVEAT
        return prediction

    def predict_case(self, case: Case, out_dir: Path | str) -> Prediction:
        """Predict one case and write its outputs into ``out_dir`` (:func:`export_prediction`); returns the
        prediction, whose ``record`` is what ``<case>.json`` holds."""
        prediction = self.predict(case)
        export_prediction(prediction, out_dir)
        return prediction

    def marker_record(self, raw: dict[str, float], uncertainty: dict[str, Any] | None = None) -> dict[str, Any]:
        """The marker and review part of ``<case>.json`` from the network's raw probabilities and the passes'
        uncertainty: per marker the raw and the calibrated probability, the calls at each operating point and the
        conformal set (when the run has a fitted calibration, :mod:`~gliomics.inference.calibration`); the WHO CNS5
        suggestion from the calibrated probabilities, indeterminate where a needed marker's set holds both classes;
        ``uncertainty`` with the run's review threshold; and ``needs_review`` with its reasons (an undetermined set,
        or a score above the threshold, :mod:`~gliomics.inference.uncertainty`)."""
        fitted = self.calibration.get("markers", {})
        markers = {m: apply_calibration(m, p, fitted.get(m), self.thresholds[m]) for m, p in raw.items()}
        out: dict[str, Any] = {"markers": markers}
        if self.calibration:
            out["calibration"] = {"source": self.calibration.get("source"), "alpha": self.calibration.get("alpha"),
                                  "calls_use": "the calibrated probability (temperature scaling)"}
        undetermined = [m for m, v in markers.items() if v.get("set_status") == "undetermined"]
        if all(m in markers for m in MARKERS):
            out["who_cns5"] = who_cns5_suggestion({m: v["probability"] for m, v in markers.items()},
                                                  {m: v["threshold"] for m, v in markers.items()},
                                                  band=self.who_band, undetermined=undetermined)
        reasons = [f"{m}: the conformal prediction set holds both classes" for m in undetermined]
        out["uncertainty"], reason = review_reason(uncertainty, self.calibration.get("review"))
        reasons += [reason] if reason else []
        out["needs_review"] = bool(reasons)
        out["review_reasons"] = reasons
        return out

    def predict_folder(self, source: Path | str, out_dir: Path | str, *, overwrite: bool = False,
                       keep_going: bool = False, progress: bool = True, layout: str = "auto",
                       on_case: Callable[[Case, Prediction], None] | None = None, num_parts: int = 1,
                       part_id: int = 0) -> dict[str, Any]:
        """Predict every case under ``source`` (or only part ``part_id`` of ``num_parts`` parts of about equal work,
        :func:`~gliomics.io.partition.select_part`); finished cases are skipped unless ``overwrite``.

        ``on_case(case, prediction)`` runs after each case's outputs are written (e.g. to write its HTML report from
        the prediction in memory).
        """
        from tqdm import tqdm

        out_dir = Path(out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(f"{out_dir}: output path exists and is not a folder")
        cases = select_part(discover_cases(source, layout=layout, allow_missing=True), num_parts, part_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        done, skipped, failed, seconds = [], [], {}, []
        for case in tqdm(cases, desc="predict", unit="case", disable=not progress):
            if not overwrite and (out_dir / f"{case.case_id}{RECORD_SUFFIX}").is_file():
                skipped.append(case.case_id)
                continue
            if case.missing:
                logger.warning("%s: %s missing; predicted from %s only", case.case_id, ", ".join(case.missing),
                               ", ".join(case.images))
            try:
                prediction = self.predict_case(case, out_dir)
                seconds.append(prediction.record["timings"]["total_s"])
                if on_case is not None:
                    on_case(case, prediction)
                done.append(case.case_id)
            except GliomicsError as exc:
                if not keep_going:
                    raise
                failed[case.case_id] = str(exc)
                logger.error("%s: %s", case.case_id, exc)
        return {"predicted": done, "skipped": skipped, "failed": failed, "seconds": float(np.sum(seconds)),
                "seconds_per_case": float(np.mean(seconds)) if seconds else None, "hardware": self.hardware()}


def _mean_alpha(alpha: torch.Tensor | None, labels: torch.Tensor, present: torch.Tensor) -> dict | None:
    """Mean CMAF weight of each sequence inside each predicted region (``alpha``: ``S × spatial``)."""
    if alpha is None:
        return None
    a = alpha
    out = {}
    for name in TUMOUR_LABELS:
        mask = labels == LABELS[name]
        if mask.any():
            out[name] = {s: round(float(a[k][mask].mean()), 4) for k, s in enumerate(SEQUENCES) if present[k]}
    return out


def _median_minimums(minimums: list[dict[str, float]]) -> dict[str, float]:
    """The fold runs' minimum volumes of an ensemble: per label, the median (0 where a run fitted none)."""
    labels = {k for mins in minimums for k in mins}
    return {k: float(np.median([mins.get(k, 0.0) for mins in minimums])) for k in labels}
