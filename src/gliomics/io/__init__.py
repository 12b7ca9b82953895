"""Input and output: NIfTI images with their geometry, case discovery, and the markers table."""

from __future__ import annotations

from gliomics.errors import CaseOptionError
from gliomics.io.cases import Case, LoadedCase, canonical_sequence, load_case
from gliomics.io.layouts import LAYOUTS, discover_cases
from gliomics.io.markers import MarkerRecord, parse_marker_value, read_markers, write_markers
from gliomics.io.nifti import Image, check_same_geometry, load_image, load_label, save_image, voxel_spacing

__all__ = [
    "LAYOUTS",
    "Case",
    "CaseOptionError",
    "Image",
    "LoadedCase",
    "MarkerRecord",
    "canonical_sequence",
    "check_same_geometry",
    "discover_cases",
    "load_case",
    "load_image",
    "load_label",
    "load_mask",
    "parse_marker_value",
    "read_markers",
    "save_image",
    "voxel_spacing",
    "write_markers",
]
