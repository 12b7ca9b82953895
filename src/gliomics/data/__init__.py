"""Cohorts (cases + markers), patient-level splits, datasets and transforms."""
