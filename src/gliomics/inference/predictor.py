"""The Predictor, nnU-Net style: construct, ``load(run_dir)``, then ``predict`` / ``predict_case`` /
``predict_folder``.

``predict`` returns a :class:`~gliomics.inference.prediction.Prediction`; ``predict_case`` also exports it: per case
``<case>_seg.nii.gz`` in the input geometry, optionally ``<case>_probabilities.nii.gz``, and ``<case>.json`` with
marker probabilities, calls, volumes, mean CMAF weights per region, timings and versions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gliomics.config import DegradeOptions, PredictOptions, RunConfig
from gliomics.constants import LABELS, MARKERS, REGIONS, SEQUENCES, TUMOUR_LABELS
from gliomics.data.transforms import sequences_present
from gliomics.errors import CheckpointError, ConfigError
from gliomics.inference.engine import (
    NetworkOutput,
    average_outputs,
    forward_volume,
    forward_with_tta,
    join_passes,
    pad_multiple,
    single_pass,
)
from gliomics.inference.marker_readout import MarkerReadout, replace_head_markers
from gliomics.inference.marker_record import marker_record
from gliomics.inference.marker_validation import (
    apply_marker_flag,
    ensemble_marker_validation,
    is_phantom_case,
    read_marker_validation,
)
from gliomics.inference.postprocess import class_argmax, postprocess_labels
from gliomics.inference.prediction import Prediction, export_prediction
from gliomics.inference.uncertainty import case_uncertainty, entropy_map
from gliomics.inference.who import DEFAULT_BAND
from gliomics.io import Case, voxel_spacing
from gliomics.labels import region_mask
from gliomics.provenance import config_digest, versions
from gliomics.runtime.checkpoint import checkpoint_file, fold_runs, load_network
from gliomics.runtime.fitted import FittedArtefacts, ensemble_fitted, read_fitted
from gliomics.runtime.hardware import autocast, configure_cpu, describe, resolve_device, resolve_precision

logger = logging.getLogger(__name__)
CAVEAT = ("Research tool, not a diagnosis: marker probabilities come from MRI alone and must be confirmed by "
          "molecular testing of tissue.")


class Predictor:
    """Segment a case and predict its markers with a trained run, or with a network in memory
    (:meth:`from_network`, as validation and the readout fit do): one path for every caller.

    What a prediction does (TTA, minimums, cavity rule, resampling, readout, calibration, sequences, degradation)
    is a :class:`~gliomics.config.PredictOptions`: the run's own (``inference.predict`` of its config), with the
    fields given here (``options`` or keyword arguments such as ``tta=True``) overriding them, and the ``options``
    of a call to :meth:`predict` / :meth:`forward` overriding those.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``.
        options: Prediction options that override the run's (a :class:`~gliomics.config.PredictOptions`, whose
            explicitly set fields count, or a mapping of fields).
        overlap: Sliding-window overlap when a volume does not fit one window (None: the run's
            ``inference.overlap``).
        save_probabilities: Also write the softmax as a 5-channel NIfTI.
        save_uncertainty: Also write the voxel-wise uncertainty (normalised entropy of the averaged softmax,
            :mod:`~gliomics.inference.uncertainty`).
        who_band: Indeterminate band of the WHO CNS5 suggestion in the JSON (:mod:`gliomics.inference.who`).
        crop: Crop to the bounding box of the head before the network (the fast path); ``False`` runs the network
            on the whole padded volume, for comparison.
        precision: ``auto`` (bf16 autocast where the hardware computes in bf16 natively), ``fp32`` or ``bf16``.
        threads: CPU threads (default: every usable core; under ``torchrun``, the rank's share of them).
        engine: ``torch``, or ``onnx``: the network exported by ``gliomics export-onnx`` (``model.onnx`` in the run
            folder) run by onnxruntime on the CPU in fp32 (:mod:`~gliomics.inference.onnx_engine`); the rest of the
            run (preprocessing, thresholds, calibration) is read from the run folder alike.
        **overrides: Fields of :class:`~gliomics.config.PredictOptions` (``tta``, ``sequences``, …).
    """

    def __init__(self, device: str = "auto", *, options: PredictOptions | Mapping[str, Any] | None = None,
                 overlap: float | None = None, save_probabilities: bool = False, save_uncertainty: bool = False,
                 who_band: float = DEFAULT_BAND, crop: bool = True, precision: str = "auto",
                 threads: int | None = None, engine: str = "torch", **overrides: Any) -> None:
        from gliomics.inference.onnx_engine import engine_settings

        device, precision = engine_settings(engine, device, precision)
        self.engine = engine
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self._requested = {**PredictOptions.explicit(options), **overrides}
        # unknown or invalid fields fail here, before a run is read
        self.options = PredictOptions().updated(self._requested)
        self.overlap = overlap
        self.save_probabilities, self.save_uncertainty = save_probabilities, save_uncertainty
        self.who_band = who_band
        self.crop = crop
        self.threads = threads
        self.model: torch.nn.Module | None = None
        self.members: list[torch.nn.Module] = []
        #: each member's marker readout, or None
        self.readouts: list[MarkerReadout | None] = []
        #: each member's torch module (what Grad-CAM differentiates), beside what the passes call (``members``)
        self.modules: list[torch.nn.Module] = []
        self.config: RunConfig | None = None
        self.fitted = FittedArtefacts()
        self.thresholds: dict[str, float] = {}
        self.checkpoint: Path | None = None
        #: the run's model card on its marker heads (:mod:`~gliomics.inference.marker_validation`)
        self.marker_validation: dict[str, Any] = {"validated_on_real_patients": False, "evidence": None}
        self._transforms: dict[tuple, Any] = {}

    # -- construction --------------------------------------------------------------------------------------------
    @classmethod
    def from_network(cls, model: torch.nn.Module, config: RunConfig, fitted: FittedArtefacts | None = None,
                     options: PredictOptions | Mapping[str, Any] | None = None, *, device: str = "cpu",
                     precision: str = "fp32", **kwargs: Any) -> Predictor:
        """A predictor of ``model`` (in memory, e.g. during training) with ``config``'s preprocessing and options
        (overridden by ``options``) and the ``fitted`` artefacts (none: raw marker probabilities at 0.5 and no
        minimums). The model is used as it is (moved to ``device`` and put in eval mode)."""
        predictor = cls(device, options=options, precision=precision, **kwargs)
        predictor._set_run([model.to(predictor.device).eval()], [model], config, [fitted or FittedArtefacts()])
        return predictor

    def load(self, run_dir: Path | str, checkpoint: str = "best") -> Predictor:
        """Load ``best.pt`` (or ``last.pt``) of a run folder with its ``fitted.json``, a checkpoint file given
        directly, every fold run of a K-fold ensemble folder (``fold_0``, …), whose probabilities are then averaged,
        or the model that ships with gliomics (``pretrained``, :mod:`~gliomics.inference.pretrained`)."""
        from gliomics.inference.pretrained import resolve_model

        run_dir = resolve_model(run_dir)
        folds = fold_runs(run_dir) or [run_dir]
        networks, models, configs, fitted, paths = [], [], [], [], []
        for run in folds:
            path = checkpoint_file(run, checkpoint)
            model, config, state = load_network(path)
            if self.device.type == "cpu":
                configure_cpu(self.threads)
            model = model.to(self.device).eval()
            from gliomics.inference.onnx_engine import onnx_network

            # what the forward passes call: the torch module, or its exported graph run by onnxruntime
            networks.append(model if self.engine == "torch" else onnx_network(path, model, torch.get_num_threads()))
            models.append(model)
            configs.append(config)
            fitted.append(read_fitted(path.parent, state))
            paths.append(path)
        _same_preprocessing(folds, configs)
        self._set_run(networks, models, configs[0], fitted, ensemble=run_dir if len(folds) > 1 else None,
                      sources=paths)
        self.marker_validation = (ensemble_marker_validation(folds) if len(folds) > 1
                                  else read_marker_validation(paths[0].parent))
        self.checkpoint = run_dir if len(folds) > 1 else paths[0]
        return self

    def _set_run(self, networks: list, models: list[torch.nn.Module], config: RunConfig,
                 fitted: list[FittedArtefacts], ensemble: Path | None = None,
                 sources: list[Path] | None = None) -> None:
        """The members, the config, the options and the fitted artefacts (an ensemble's: thresholds averaged,
        minimums' median, and its own calibration, fitted out of fold); ``sources`` name the members' checkpoints
        in errors."""
        self.members, self.modules, self.model, self.config = networks, models, models[0], config
        self.options = config.inference.predict.updated(self._requested)
        self.readouts = [_readout(f, src) for f, src in zip(fitted, sources or ["the network"] * len(fitted))]
        self.fitted = fitted[0] if len(fitted) == 1 else ensemble_fitted(fitted, read_fitted(ensemble))
        self.thresholds = {m: float(self.fitted.thresholds.get(m, 0.5)) for m in MARKERS}
        self._transforms = {}

    def resolve(self, options: PredictOptions | Mapping[str, Any] | None = None) -> PredictOptions:
        """The options of one call: this predictor's, with ``options`` overriding them."""
        return self.options.updated(options)

    def transform(self, options: PredictOptions):
        """The preprocessing of ``options`` (sequences, degradation), built once per combination."""
        key = (tuple(options.sequences or ()), options.degrade)
        if key not in self._transforms:
            from gliomics.data.transforms import inference_transforms

            self._transforms[key] = inference_transforms(
                spacing=self.config.data.working_spacing, sequences=options.sequences,
                divisible=pad_multiple(self.model), crop=self.crop, degrade=_degradation(options.degrade),
                normalisation=self.config.data.normalisation)
        return self._transforms[key]

    def hardware(self) -> dict[str, Any]:
        """Where the predictions run: device, CPU model, threads, precision and engine (recorded in every
        ``<case>.json``)."""
        engine = self.members[0].hardware() if self.engine == "onnx" and self.members else {"engine": self.engine}
        return {**describe(self.device, self.precision), **engine}

    def _to_input_geometry(self, volume: torch.Tensor, image, options: PredictOptions, *,
                           nearest: bool) -> np.ndarray:
        """Undo the preprocessing (padding, crop, spacing, orientation) of ``image`` on a channel-first volume."""
        from monai.data import MetaTensor
        from monai.transforms import Invertd

        pred = MetaTensor(volume, meta=dict(image.meta))
        pred.applied_operations = list(image.applied_operations)
        inverse = Invertd(keys="pred", transform=self.transform(options), orig_keys="image", nearest_interp=nearest)
        return np.asarray(inverse({"pred": pred, "image": image})["pred"])

    # -- the network ---------------------------------------------------------------------------------------------
    def forward(self, case: Case, timings: dict[str, float] | None = None, *,
                options: PredictOptions | Mapping[str, Any] | None = None,
                data: dict | None = None) -> tuple[dict, NetworkOutput]:
        """Preprocess one case (unless its preprocessed ``data`` is given) and run the network on it: the
        preprocessed sample and the :class:`~gliomics.inference.engine.NetworkOutput`. ``timings`` receives the
        seconds of each step."""
        if self.model is None or self.config is None:
            raise RuntimeError("call load() before forward()")
        opts = self.resolve(options)
        timings = {} if timings is None else timings
        t = time.perf_counter()
        if data is None:
            data = self.transform(opts)({"case": case})
        timings["load_preprocess_s"] = time.perf_counter() - t
        t = time.perf_counter()
        x, p = data["image"].as_tensor()[None].to(self.device), data["present"][None].to(self.device)
        out = self.network_output(x, p, float(np.prod(voxel_spacing(data["image"].affine))), opts)
        timings["network_s"] = time.perf_counter() - t
        return data, out

    def network_output(self, x: torch.Tensor, present: torch.Tensor, voxel_mm3: float,
                       options: PredictOptions) -> NetworkOutput:
        """Every member's passes over ``x`` (``1 × S × spatial``, with flip TTA if asked), with the marker readout in
        place of the heads where asked, averaged over the members."""
        kwargs = {"roi_size": self.config.train.patch_size,
                  "overlap": self.config.inference.overlap if self.overlap is None else self.overlap,
                  "whole_volume_factor": self.config.inference.whole_volume_factor}
        outs = []
        for model, readout in zip(self.members, self.readouts):
            with autocast(self.device, self.precision):
                out = (forward_with_tta(model, x, present, **kwargs) if options.tta
                       else forward_volume(model, x, present, **kwargs))
            out.setdefault("passes", single_pass(out["probs"], out["markers"]))
            if options.marker_readout and readout is not None and out["passes"]["labels"] is not None:
                replace_head_markers(readout, out, x[0], voxel_mm3)
            outs.append(out)
        res = outs[0] if len(outs) == 1 else average_outputs(outs)
        passes = join_passes([o["passes"] for o in outs])
        uncertainty = None
        if passes["labels"] is not None:
            uncertainty = case_uncertainty(passes["labels"], passes["markers"], self.passes_source(options))
        return NetworkOutput(probs=res["probs"], markers=res["markers"], alpha=res.get("alpha"),
                             pool_weights=res.get("pool_weights"), passes=passes, uncertainty=uncertainty)

    def markers_from(self, options: PredictOptions | None = None) -> str:
        """What the marker probabilities come from: the run's marker readout or the network's heads."""
        opts = options or self.options
        return "readout" if opts.marker_readout and any(r is not None for r in self.readouts) else "network heads"

    def passes_source(self, options: PredictOptions | None = None) -> str:
        """What the passes of a prediction are, in words."""
        opts = options or self.options
        parts = ([f"{len(self.members)} fold models"] if len(self.members) > 1 else []) + (["flip TTA"] if opts.tta
                                                                                          else [])
        return " × ".join(parts) or "one pass"

    # -- one case ------------------------------------------------------------------------------------------------
    def predict(self, case: Case, *, options: PredictOptions | Mapping[str, Any] | None = None,
                data: dict | None = None) -> Prediction:
        """Predict one case (from its preprocessed ``data`` where given); nothing is written
        (:func:`~gliomics.inference.prediction.export_prediction` does)."""
        if self.model is None or self.config is None:
            raise RuntimeError("call load() before predict()")
        opts = self.resolve(options)
        timings: dict[str, float] = {}
        data, res = self.forward(case, timings, options=opts, data=data)
        image, present = data["image"], data["present"]
        t = time.perf_counter()
        probs = res.probs[0].float().cpu() if res.probs is not None else None
        used = sequences_present(present)
        record: dict[str, Any] = {"case_id": case.case_id, "sequences_present": used,
                                  "sequences_missing": [s for s in SEQUENCES if s not in used]}
        alpha = res.alpha[0].float().cpu() if res.alpha is not None else None
        pool = res.pool_weights[0].float().cpu() if res.pool_weights is not None else None
        prediction = Prediction(case_id=case.case_id, record=record, image=image, present=present, probs=probs,
                                alpha=alpha, pool_weights=pool)
        if probs is not None:
            self._segment(prediction, opts)
        prediction.raw_markers = res.marker_probabilities
        record.update(self.marker_record(prediction.raw_markers, res.uncertainty, opts))
        if res.markers:
            record["markers_from"] = self.markers_from(opts)
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

    def _segment(self, prediction: Prediction, options: PredictOptions) -> None:
        """The label map in the input geometry, post-processed once there (:func:`postprocess_labels`), with its
        volumes and the mean CMAF weights inside its regions. Where the input's voxels differ from the working
        grid's, the class probabilities are resampled to the input grid (linear) before the argmax, unless
        ``options.resample_probabilities`` is False (nearest neighbour)."""
        image, probs, record = prediction.image, prediction.probs, prediction.record
        affine = np.asarray(image.meta["original_affine"], dtype=np.float64)
        spacing = voxel_spacing(affine)
        same_grid = np.allclose(spacing, voxel_spacing(image.affine), atol=1e-3)
        soft = torch.from_numpy(self._to_input_geometry(probs, image, options,
                                                        nearest=same_grid or not options.resample_probabilities)
                                .astype(np.float32))
        seg, post = postprocess_labels(
            soft, class_argmax(soft).to(torch.uint8), float(np.prod(spacing)),
            min_component_mm3=self.fitted.min_component_mm3 if options.component_minimums else None,
            min_label_mm3=self.fitted.min_label_mm3 if options.label_minimums else None,
            detached_cavities=options.detached_cavities, min_volume_mm3=options.min_component_mm3)
        seg = seg.numpy().astype(np.uint8)
        if post:
            record["postprocessing"] = post
        alpha = None
        if prediction.alpha is not None:
            alpha = torch.from_numpy(self._to_input_geometry(prediction.alpha, image, options, nearest=same_grid)
                                     .astype(np.float32))
        record["mean_cmaf_weight"] = _mean_alpha(alpha, torch.from_numpy(seg), prediction.present)
        voxel_ml = float(np.prod(spacing)) / 1000.0
        record["volumes_ml"] = {r: round(float(region_mask(seg, r).sum()) * voxel_ml, 3) for r in REGIONS}
        prediction.labels = class_argmax(probs).to(torch.uint8)
        prediction.seg, prediction.affine = seg, affine
        if self.save_probabilities:
            prediction.probabilities = np.moveaxis(soft.numpy(), 0, -1)
        if self.save_uncertainty:
            prediction.entropy = self._to_input_geometry(entropy_map(probs)[None], image, options,
                                                         nearest=False)[0].astype(np.float32)

    def predict_case(self, case: Case, out_dir: Path | str, *,
                     options: PredictOptions | Mapping[str, Any] | None = None) -> Prediction:
        """Predict one case and write its outputs into ``out_dir`` (:func:`export_prediction`); returns the
        prediction, whose ``record`` is what ``<case>.json`` holds."""
        prediction = self.predict(case, options=options)
        export_prediction(prediction, out_dir)
        return prediction

    def marker_record(self, raw: dict[str, float], uncertainty: dict[str, Any] | None = None,
                      options: PredictOptions | None = None) -> dict[str, Any]:
        """The marker and review part of ``<case>.json`` (:func:`~gliomics.inference.marker_record.marker_record`)
        with this run's thresholds and, unless ``options.calibration`` is off, its calibration."""
        calibration = self.fitted.calibration if (options or self.options).calibration else {}
        return marker_record(raw, self.thresholds, calibration, uncertainty, who_band=self.who_band)

    def predict_folder(self, source: Path | str, out_dir: Path | str, *, overwrite: bool = False,
                       keep_going: bool = False, progress: bool = True, layout: str = "auto",
                       on_case: Callable[[Case, Prediction], None] | None = None, num_parts: int = 1,
                       part_id: int = 0, options: PredictOptions | Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Predict every case under ``source`` (or only part ``part_id`` of ``num_parts`` parts of about equal work,
        :func:`~gliomics.io.partition.select_part`); finished cases are skipped unless ``overwrite``.

        ``on_case(case, prediction)`` runs after each case's outputs are written (e.g. to write its HTML report from
        the prediction in memory).
        """
        from gliomics.inference.folder_prediction import predict_folder

        return predict_folder(self, source, out_dir, overwrite=overwrite, keep_going=keep_going, progress=progress,
                              layout=layout, on_case=on_case, num_parts=num_parts, part_id=part_id, options=options)


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


def _degradation(spec: DegradeOptions | None):
    """The transform of a degradation option (:class:`~gliomics.data.degradations.DegradeSequenced`), or None."""
    if spec is None:
        return None
    from gliomics.data.degradations import Degradation, DegradeSequenced

    try:
        return DegradeSequenced(Degradation(spec.sequence, spec.name), seed=spec.seed)
    except ValueError as exc:
        raise ConfigError(f"prediction options: degrade: {exc}") from exc


def _readout(fitted: FittedArtefacts, where: Path | str) -> MarkerReadout | None:
    """The marker readout of a run's fitted artefacts, or None."""
    if not fitted.marker_readout:
        return None
    try:
        return MarkerReadout.from_dict(fitted.marker_readout)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: its marker readout is malformed ({exc})") from exc


def _same_preprocessing(folds: list[Path], configs: list[RunConfig]) -> None:
    """The runs of an ensemble must share their working spacing, patch size and whole-volume factor."""
    key = [(c.data.working_spacing, c.train.patch_size, c.inference.whole_volume_factor) for c in configs]
    for run, k in zip(folds[1:], key[1:]):
        if k != key[0]:
            raise CheckpointError(f"{run}: its working spacing, patch size or whole-volume factor differ from "
                                  f"{folds[0]}'s; the runs of an ensemble must share them")
