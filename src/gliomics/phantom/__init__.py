"""The phantom glioma cohort generator of PHANTOM_SPEC.md."""

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
