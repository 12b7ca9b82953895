"""Reports: the WHO CNS5 suggestion, interpretability maps, figures and the per-case and cohort HTML reports.

Only :mod:`gliomics.report.who` is light; the other modules import torch, matplotlib or Jinja2 when imported.
"""
