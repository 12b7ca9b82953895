"""The phantom glioma cohort generator: synthetic cases in the BraTS 2024 layout with markers whose exact
posterior given the images is known."""

from gliomics.phantom.generator import (
    SUPERVISION_KINDS,
    PhantomSettings,
    bayes_auc,
    generate_case,
    generate_cohort,
    parse_supervision,
)

__all__ = ["SUPERVISION_KINDS", "PhantomSettings", "bayes_auc", "generate_case", "generate_cohort",
           "parse_supervision"]
