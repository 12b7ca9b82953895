"""The 2D slice benchmark of the TERT paper: ROI slices of T1ce, their preprocessing, training of five 2D backbones
and the patient-level evaluation (Table 1, Table 2, ROC curves, confusion matrices).

Modules: ``extraction`` (VOI, slice selection, ROI crop), ``preprocessing`` (NLM, Laplacian, [0, 1], bicubic),
``slice_set`` (the slices of a cohort and their export), ``split`` (patient-level split, patient averaging),
``augment``, ``training``, ``tables``, ``figures``, ``benchmark`` (:func:`run_benchmark`) and ``settings``.
The backbones are in :mod:`gliomics.models.slice2d`.
"""
