"""Settings of the TERT slice benchmark (pydantic) and its presets, ``configs/slices/{paper,cpu}.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gliomics.config import config_error
from gliomics.constants import MARKERS
from gliomics.errors import ConfigError
from gliomics.presets import PRESET_DIR as RUN_PRESET_DIR
from gliomics.presets import available_presets as available_in
from gliomics.presets import read_preset

__all__ = ["PRESET_DIR", "BenchmarkSettings", "SliceSettings", "available_presets", "make_settings"]


class SliceSettings(BaseModel):
    """How ROI slices are taken and preprocessed.

    Attributes:
        marker: The binary marker to predict (one of :data:`~gliomics.constants.MARKERS`).
        voi_labels: Segmentation labels that form the VOI when no VOI masks are given (ET ∪ NETC by default).
        k: Axial slices per patient: those with the largest VOI area.
        margin_mm: Margin around the VOI's bounding box in each slice, in mm.
        size: Side of the square slices after the bicubic resize (224 in the paper).
        edge_weight: Weight of the Laplacian edge enhancement (0 turns it off).
        denoise: Apply non-local-means denoising.
        nlm_h: NLM filter strength as a multiple of the estimated noise σ.
    """

    model_config = ConfigDict(extra="forbid")

    marker: str = "tert"
    voi_labels: tuple[int, ...] = (1, 3)
    k: int = Field(5, ge=1, le=64)
    margin_mm: float = Field(10.0, ge=0)
    size: int = Field(224, ge=16, le=1024)
    edge_weight: float = Field(0.5, ge=0, le=10)
    denoise: bool = True
    nlm_h: float = Field(0.8, gt=0, le=10)

    @field_validator("marker")
    @classmethod
    def _known_marker(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in MARKERS:
            raise ValueError(f"unknown marker {value!r}; expected one of {', '.join(MARKERS)}")
        return value

    @field_validator("voi_labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> tuple[int, ...]:
        from gliomics.slices.extraction import parse_voi_labels

        try:
            return parse_voi_labels(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


class BenchmarkSettings(SliceSettings):
    """The whole benchmark: slices, training of every backbone, and the statistics.

    Attributes:
        backbones: Keys of :data:`gliomics.models.slice2d.BACKBONES`, in table order.
        seed: Seeds the patient split (the same for every backbone), initialisation, augmentation and search.
        test_fraction: Share of patients in the test set (stratified by the marker).
        val_fraction: Share of the training patients held out for early stopping and the plateau scheduler.
        epochs: Maximum epochs per training run.
        minutes: Wall-time budget per backbone (shared by the search trials), or None.
        batch_size: Slices per batch.
        lr: Adam learning rate.
        weight_decay: Adam weight decay (L2).
        patience: Epochs without a better validation loss before stopping.
        plateau_patience: Epochs without improvement before ReduceLROnPlateau lowers the learning rate.
        plateau_factor: Factor of that reduction.
        search: Random settings of lr, weight decay and edge weight tried besides the defaults (0: none).
        threshold: Patient probability at or above which the call is "altered".
        n_boot: Bootstrap resamples for the F1 and AUC CIs.
    """

    backbones: list[str] = Field(default_factory=lambda: ["regnet", "ghostnet", "mobilenet", "resnext", "shufflenet"],
                                 min_length=1)
    seed: int = 0
    test_fraction: float = Field(0.2, gt=0, lt=1)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    epochs: int = Field(100, ge=1)
    minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, lt=1)
    patience: int = Field(15, ge=1)
    plateau_patience: int = Field(5, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    search: int = Field(0, ge=0, le=100)
    threshold: float = Field(0.5, ge=0, le=1)
    n_boot: int = Field(2000, ge=100)

    @field_validator("backbones", mode="before")
    @classmethod
    def _backbones(cls, value: Any) -> list[str]:
        from gliomics.models.slice2d import resolve_backbones

        try:
            return resolve_backbones(value if isinstance(value, str) else ",".join(map(str, value)))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


#: The benchmark's presets: ``paper`` (the paper's sizes, for a GPU) and ``cpu`` (sized for 2 CPU cores), YAML files
#: read like the run presets (``inherits_from``, unknown keys refused).
PRESET_DIR = RUN_PRESET_DIR / "slices"


def available_presets() -> list[str]:
    """Names of the benchmark's shipped presets."""
    return available_in(PRESET_DIR)


def make_settings(preset: str | Path = "paper", **overrides: Any) -> BenchmarkSettings:
    """Settings of a preset (a name of :data:`PRESET_DIR` or a YAML file) with ``overrides`` applied (None values
    are ignored).

    Raises:
        ConfigError: Unknown preset, unreadable file, unknown key or invalid value, naming the file or the setting.
    """
    path, values = read_preset(preset, PRESET_DIR)
    values.pop("description", None)
    try:
        BenchmarkSettings(**values)
    except ValidationError as err:
        raise config_error(err, str(path)) from err
    try:
        return BenchmarkSettings(**{**values, **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as err:
        raise config_error(err, "settings") from err
