"""The 2D slice benchmark of the TERT paper: ROI slices of T1ce, their preprocessing, training of five 2D backbones
and the patient-level evaluation (Table 1, Table 2, ROC curves, confusion matrices).

Modules: ``extraction`` (VOI, slice selection, ROI crop), ``preprocessing`` (NLM, Laplacian, [0, 1], bicubic),
``slice_set`` (the slices of a cohort and their export), ``augment``, ``training`` (trials, the random search, patient
probabilities), ``tables`` (Tables 1 and 2), ``benchmark`` (:func:`run_benchmark`) and ``settings`` (presets in
``configs/slices/``). It reuses the shared house: the patient split and ``splits.json`` of :mod:`gliomics.data.splits`,
the metrics, CIs and number formats of :mod:`gliomics.evaluation`, the comparison figures of
:mod:`gliomics.report.cohort_figures`, the preset reading of :mod:`gliomics.config`, safe weights loading
(:mod:`gliomics.io.torch_files`), checkpoints and threads of :mod:`gliomics.runtime`. The backbones are in
:mod:`gliomics.models.slice2d`.
"""
