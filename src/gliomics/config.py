"""Typed run configuration: the pydantic models of a run's sections (model, loss, data, train, inference and its
prediction options). Presets, overrides and YAML are read and written by :mod:`gliomics.presets`. This module imports
no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gliomics.constants import MARKERS, RANDOMISATION_INGREDIENTS, SEQUENCES
from gliomics.errors import ConfigError

__all__ = [
    "DataConfig",
    "LossConfig",
    "DegradeOptions",
    "InferenceConfig",
    "ModelConfig",
    "PredictOptions",
    "RunConfig",
    "TrainConfig",
    "config_error",
]



class ModelConfig(BaseModel):
    """Which registered model to build and the overrides of its preset hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class LossConfig(BaseModel):
    """Weights of :class:`gliomics.losses.MultiTaskLoss`.

    ``deep_supervision_weights`` start with the full-resolution output, then the auxiliary heads finest first.
    ``pos_weight`` set to ``None`` means: compute it from the marker prevalence of the training split.
    """

    model_config = ConfigDict(extra="forbid")

    lambda_dice: float = Field(1.0, ge=0)
    lambda_ce: float = Field(1.0, ge=0)
    deep_supervision_weights: list[float] = Field(default_factory=lambda: [1.0, 0.5, 0.25], min_length=1)
    marker_weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(MARKERS, 1.0))
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    pos_weight: dict[str, float] | None = None
    focal: bool = False
    focal_gamma: float = Field(2.0, ge=0)
    seg_ce: Literal["ce", "focal"] = "ce"
    seg_focal_gamma: float = Field(2.0, ge=0)
    batch_dice: bool = True
    include_background: bool = False
    # weight of the whole-tumour loss (Dice + BCE of 1 - p(background)) on cases with a whole-tumour mask only
    lambda_wt: float = Field(1.0, ge=0)

    @field_validator("marker_weights", "pos_weight")
    @classmethod
    def _known_markers(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - set(MARKERS))
        if unknown:
            raise ValueError(f"unknown marker(s) {unknown}; markers are {list(MARKERS)}")
        if any(v < 0 for v in value.values()):
            raise ValueError("weights must be non-negative")
        return value

    @field_validator("marker_weights")
    @classmethod
    def _fill_markers(cls, value: dict[str, float]) -> dict[str, float]:
        # Markers left out keep the default weight 1.0, so a preset can change one weight alone.
        return {m: float(value.get(m, 1.0)) for m in MARKERS}

    @field_validator("deep_supervision_weights")
    @classmethod
    def _non_negative(cls, value: list[float]) -> list[float]:
        if any(v < 0 for v in value) or value[0] <= 0:
            raise ValueError("weights must be non-negative and the first (full resolution) positive")
        return value


class DataConfig(BaseModel):
    """How cases are found, resampled and split.

    ``working_spacing`` resamples every case to that voxel size (mm) before the network (the network's grid; not the
    grid a cohort was generated or preprocessed at, nor a file's own voxel size); ``None`` adopts the median voxel
    size of the training cases, written into the run's config, so that a run always has one working resolution and
    inputs of any resolution are resampled to it. Predictions are mapped back to the input geometry.
    """

    model_config = ConfigDict(extra="forbid")

    layout: str = "auto"
    working_spacing: list[float] | None = None
    val_fraction: float = Field(0.2, ge=0, lt=1)
    test_fraction: float = Field(0.0, ge=0, lt=1)
    holdout_sites: list[str] = Field(default_factory=list)
    split_seed: int | None = None  # None: train.seed; set it to vary the initialisation over one fixed split
    # k-fold cross-validation: fold `fold` of a patient-level, stratified split into `folds` folds validates, the
    # others train (val_fraction and test_fraction are then unused)
    folds: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    # the --data cohorts (0-based, in the order given) whose cases may validate; the others' cases all train (e.g.
    # a few real cases next to phantoms: [0] validates on the phantoms alone). None: every cohort
    val_cohorts: list[int] | None = None
    cache: bool = True
    # how raw intensities become the network's input: "robust" (negatives to zero, bright outliers above the 99.5th
    # percentile clipped, then the z-score over the head) or "zscore" (the z-score alone, as the paper)
    normalisation: Literal["robust", "zscore"] = "robust"

    @model_validator(mode="after")
    def _fold_in_range(self) -> DataConfig:
        if (self.folds is None) != (self.fold is None):
            raise ValueError("data.folds and data.fold go together")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"data.fold must be below data.folds ({self.folds}), got {self.fold}")
        return self

    @field_validator("working_spacing")
    @classmethod
    def _three_positive(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (len(value) != 3 or any(v <= 0 for v in value)):
            raise ValueError("working_spacing must be three positive numbers (mm)")
        return value

    @field_validator("val_cohorts")
    @classmethod
    def _cohort_positions(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(v < 0 for v in value)):
            raise ValueError("val_cohorts must list 0-based positions of --data cohorts")
        return value


class TrainConfig(BaseModel):
    """Optimisation, patches, augmentation and validation of :func:`gliomics.training.trainer.run_training`."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(150, ge=1)
    # a budget in optimizer steps replaces the epochs when set (the last epoch may be partial)
    steps: int | None = Field(None, ge=1)
    minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(2, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    warmup_epochs: float = Field(1.0, ge=0)
    grad_clip: float = Field(12.0, gt=0)
    patch_size: list[int] = Field(default_factory=lambda: [128, 128, 128], min_length=3, max_length=3)
    modality_dropout: float = Field(0.2, ge=0, le=1)
    # share of the training patches drawn from cases with subregion labels when a cohort mixes kinds of supervision
    # (sampling with replacement); None draws every case equally often
    subregion_share: float | None = Field(None, gt=0, lt=1)
    # share of the training patches drawn from each --data cohort, in the order given (sampling with replacement;
    # e.g. [0.5, 0.5] for 76 phantoms and 6 real cases); None draws every case equally often
    cohort_shares: list[float] | None = None
    # start from the weights of another model (a run folder, a checkpoint or "pretrained") instead of at random:
    # fine-tuning, with a fresh optimizer and schedule; its network must be the one this config builds
    init_from: str | None = None
    elastic_prob: float = Field(0.1, ge=0, le=1)
    affine_prob: float = Field(0.2, ge=0, le=1)
    blur_noise_prob: float = Field(0.3, ge=0, le=1)
    # per-sequence gamma and bias field: probability of each, and the largest bias-field coefficient
    contrast_prob: float = Field(0.3, ge=0, le=1)
    bias_field_max: float = Field(0.15, ge=0, le=1)
    # domain randomisation (gliomics.data.randomisation): the probability of each ingredient per case and sequence
    # (0: off), and which ingredients (null: the seven image ingredients, constants.DEFAULT_RANDOMISATION_INGREDIENTS)
    randomisation: float = Field(0.0, ge=0, le=1)
    randomisation_ingredients: list[str] | None = None
    val_every: int = Field(1, ge=1)
    patience: int = Field(20, ge=1)
    selection_auc_weight: float = Field(0.5, ge=0, le=1)
    # after training, fit a logistic readout of the markers on the training split's tumour features
    # (gliomics.inference.marker_readout); predictions then take the markers from it instead of the network heads
    marker_readout: bool = False
    num_workers: int = Field(1, ge=0)
    seed: int = 0

    @field_validator("randomisation_ingredients")
    @classmethod
    def _known_ingredients(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or () if v not in RANDOMISATION_INGREDIENTS]
        if unknown:
            raise ValueError(f"unknown ingredient {unknown[0]!r}; expected some of "
                             f"{', '.join(RANDOMISATION_INGREDIENTS)}")
        return value

    @field_validator("cohort_shares")
    @classmethod
    def _positive_shares(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(not v > 0 for v in value)):
            raise ValueError("cohort_shares must be positive numbers, one per --data cohort")
        return value

    @field_validator("patch_size")
    @classmethod
    def _divisible(cls, value: list[int]) -> list[int]:
        if any(v < 16 or v % 16 for v in value):
            raise ValueError("patch_size entries must be multiples of 16 and at least 16")
        return value


class DegradeOptions(BaseModel):
    """One sequence degraded before the z-score (:mod:`gliomics.data.degradations`), to measure robustness."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sequence: str
    # a name of gliomics.data.degradations.DEGRADATIONS, checked where the degradation is built
    name: str
    seed: int = 0

    @field_validator("sequence")
    @classmethod
    def _known_sequence(cls, value: str) -> str:
        if value not in SEQUENCES:
            raise ValueError(f"unknown sequence {value!r}; expected one of {', '.join(SEQUENCES)}")
        return value


class PredictOptions(BaseModel):
    """What a prediction does after the network's weights are chosen: the same for validation, ``predict``,
    ``calibrate``, ``compare``, ``split-evaluation``, ``robustness`` and the report. A run keeps its own under
    ``inference.predict``; a caller overrides fields per call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # average over a left-right flip
    tta: bool = False
    # whole-tumour and cavity components smaller than this are removed
    min_component_mm3: float = Field(50.0, ge=0)
    # relabel a tumour label whose whole volume is below the run's fitted minimum for it
    label_minimums: bool = True
    # give each component below the run's fitted minimum component volume for its label to the next label
    component_minimums: bool = True
    # a resection-cavity component that touches no tumour label becomes background
    detached_cavities: bool = True
    # where the input's voxels differ from the working grid's, resample the class probabilities to the input grid
    # (linear) before the argmax; False maps them by nearest neighbour
    resample_probabilities: bool = True
    # marker probabilities from the run's marker readout where it has one (else the network heads')
    marker_readout: bool = True
    # the run's fitted marker calibration (temperature, operating points, conformal sets); False reports the raw
    # probabilities with the validation Youden thresholds
    calibration: bool = True
    # use only these sequences (the others are treated as missing); None: every sequence the case has
    sequences: list[str] | None = None
    # one sequence degraded before the z-score; None: the case as it is
    degrade: DegradeOptions | None = None

    @field_validator("sequences")
    @classmethod
    def _known_sequences(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [s for s in value if s not in SEQUENCES]
        if unknown or not value:
            raise ValueError(f"sequences must be a non-empty subset of {', '.join(SEQUENCES)}"
                             + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
        return [s for s in SEQUENCES if s in value]

    @staticmethod
    def explicit(options: Mapping[str, Any] | PredictOptions | None) -> dict[str, Any]:
        """The fields ``options`` sets: a mapping's keys, or the fields of options that were set explicitly."""
        if options is None:
            return {}
        if isinstance(options, PredictOptions):
            return {k: getattr(options, k) for k in options.model_fields_set}
        return dict(options)

    def updated(self, overrides: Mapping[str, Any] | PredictOptions | None) -> PredictOptions:
        """These options with ``overrides`` (a mapping of fields, or options whose explicitly set fields win),
        validated."""
        if overrides is None:
            return self
        try:
            return PredictOptions.model_validate({**self.model_dump(), **PredictOptions.explicit(overrides)})
        except ValidationError as exc:
            raise config_error(exc, "prediction options") from None


class InferenceConfig(BaseModel):
    """How validation, prediction and the case report run the network over a preprocessed volume, and what a
    prediction does with its output (``predict``)."""

    model_config = ConfigDict(extra="forbid")

    # volumes of at most this many training patches' voxels are segmented in one pass; larger ones by Gaussian
    # sliding windows of the patch size
    whole_volume_factor: float = Field(1.5, gt=0)
    # overlap of the sliding windows of validation (`gliomics predict --overlap` sets its own)
    overlap: float = Field(0.25, ge=0, lt=1)
    predict: PredictOptions = Field(default_factory=PredictOptions)


#: Keys that older configs named otherwise: (section, old key) -> (section, new key).
_RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("train", "whole_volume_factor"): ("inference", "whole_volume_factor"),
    ("train", "val_overlap"): ("inference", "overlap"),
    ("data", "spacing"): ("data", "working_spacing"),
}


class RunConfig(BaseModel):
    """The resolved configuration of a run: model, loss, data, training and inference."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @model_validator(mode="before")
    @classmethod
    def _keys_of_older_configs(cls, data: Any) -> Any:
        """Runs and configs written before the ``inference`` section kept its keys under ``train``, and called the
        working spacing ``data.spacing``; a key found under its old name (a checkpoint's config, ``--set
        train.whole_volume_factor=…``) moves to its new place and wins over what is there."""
        if not isinstance(data, dict):
            return data
        old = [(sec, key) for sec, key in _RENAMED if isinstance(data.get(sec), dict) and key in data[sec]]
        if not old:
            return data
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
        for sec, key in old:
            new_sec, new_key = _RENAMED[sec, key]
            data.setdefault(new_sec, {})
            data[new_sec] = dict(data[new_sec] or {})
            data[new_sec][new_key] = data[sec].pop(key)
        return data


def config_error(err: ValidationError, source: str) -> ConfigError:
    """One line for a pydantic validation error: the source, the first key and what is wrong with it."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return ConfigError(f"{source}: {key}: {msg}{more}")
