"""Raw scans in: reorientation, N4, co-registration, atlas registration, brain mask, resampling, crop/pad, z-score,
and the inverse mapping of results back to the native scans."""

from gliomics.preprocess.atlas import Atlas, load_atlas
from gliomics.preprocess.cohort import preprocess_cohort
from gliomics.preprocess.native import (
    NATIVE_SEG_SUFFIX,
    labels_to_native,
    native_outputs,
    seg_to_native,
    transforms_dir,
)
from gliomics.preprocess.pipeline import BRATS_SHAPE, PreprocessSettings, preprocess_case
from gliomics.preprocess.registration import RegistrationSettings

__all__ = [
    "BRATS_SHAPE",
    "NATIVE_SEG_SUFFIX",
    "Atlas",
    "PreprocessSettings",
    "RegistrationSettings",
    "labels_to_native",
    "load_atlas",
    "native_outputs",
    "preprocess_case",
    "preprocess_cohort",
    "seg_to_native",
    "transforms_dir",
]
