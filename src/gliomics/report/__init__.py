"""Reports: interpretability maps, figures and the per-case and cohort HTML reports. They render what inference and
evaluation computed (the WHO CNS5 suggestion is :mod:`gliomics.inference.who`); the modules import torch,
matplotlib or Jinja2 when imported.
"""
