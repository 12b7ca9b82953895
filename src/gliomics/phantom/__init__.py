"""The phantom glioma cohort generator of PHANTOM_SPEC.md."""

from gliomics.phantom.generator import PhantomSettings, bayes_auc, generate_case, generate_cohort

__all__ = ["PhantomSettings", "bayes_auc", "generate_case", "generate_cohort"]
