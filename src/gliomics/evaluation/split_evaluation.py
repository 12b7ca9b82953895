"""``gliomics evaluate --run RUN --split val|test``: predict a run's own held-out split and score it.

The cases come from the cohorts named in the run's ``splits.json`` (as ``gliomics calibrate`` finds them), so that
the *internal* figures of a run (the paper's Table 3) come from one command, next to an external cohort scored with
``gliomics evaluate --pred … --ref …``. The training split is refused: its figures would say nothing about new cases.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gliomics.errors import InputError, OutputError

logger = logging.getLogger(__name__)

#: The splits that can be evaluated: the held-out ones.
HELD_OUT_SPLITS = ("val", "test")
#: Where the split's predictions go inside the evaluation folder.
PREDICTIONS = "predictions"


def split_cases(run: Path, split: str) -> tuple[list, list[Path]]:
    """The cohort cases of ``split`` of ``run`` and the folders they come from.

    Raises:
        InputError: the split is not a held-out one, the run names no cohort, or the split is empty.
    """
    from gliomics.data.splits import run_cohort

    if split not in HELD_OUT_SPLITS:
        raise InputError(f"--split {split}: choose one of {', '.join(HELD_OUT_SPLITS)} (the network trained on the "
                         "training split)")
    cohort, splits, datas = run_cohort(run)
    ids = splits.get(split, [])
    if not ids:
        raise InputError(f"{Path(run)}: the run has no {split} cases")
    missing = [c for c in ids if c not in cohort]
    if missing:
        raise InputError(f"{Path(run)}: {len(missing)} {split} cases are no longer in "
                         f"{', '.join(map(str, datas))} (e.g. {missing[0]!r})")
    cases = [cohort[c] for c in ids]
    return cases, datas


def evaluate_split(run: Path | str, split: str, out: Path | str, *, tta: bool = False, device: str = "auto",
                   precision: str = "auto", by: str | None = None, n_boot: int = 2000,
                   progress: bool = True, rule: str = "both",
                   options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Predict the ``split`` cases of ``run`` into ``out/predictions`` (as ``gliomics predict`` would: the run's
    prediction options, with flip TTA if asked and ``options`` overriding them) and score them into ``out``; returns
    the summary of
    :func:`~gliomics.evaluation.evaluate.score_cases`, with ``split`` and ``run`` added."""
    from tqdm import tqdm

    from gliomics.evaluation.evaluate import score_cases, truth_file
    from gliomics.inference.predictor import Predictor
    from gliomics.io.predictions import RECORD_SUFFIX

    run, out = Path(run), Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: output path exists and is not a folder")
    cases, datas = split_cases(run, split)
    predictor = Predictor(device, options={**({"tta": True} if tta else {}), **(options or {})},
                          precision=precision).load(run)
    pred_dir = out / PREDICTIONS
    pred_dir.mkdir(parents=True, exist_ok=True)
    for c in tqdm(cases, desc=f"predict {split}", unit="case", disable=not progress):
        if not (pred_dir / f"{c.case_id}{RECORD_SUFFIX}").is_file():  # a re-run resumes
            predictor.predict_case(c.case, pred_dir)
    table = {c.case_id: c.markers for c in cases if c.markers is not None}
    summary = score_cases(pred_dir, [c.case for c in cases], table, out=out, by=by, n_boot=n_boot,
                          truth_files=[truth_file(d) for d in datas], title=f"the {split} split of {run}",
                          rule=rule)
    summary.update(split=split, run=str(run), data=[str(d) for d in datas])
    return summary
