"""``gliomics package-model``: a trained run and its measured evaluations made into a model that ships inside the
package (:mod:`gliomics.inference.pretrained`), with its model card.

The packaged folder holds what prediction needs and nothing to resume training: ``best.pt`` with the weights and the
config alone, ``fitted.json``, ``config.yaml``, and the model card twice: ``model_card.json`` (the run's card, which
the predictor reads for the marker flag, with the training budget, the measured results, the intended use and the
limitations added) and ``MODEL_CARD.md`` for people.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gliomics.constants import MODEL_CARD_FILE
from gliomics.errors import InputError
from gliomics.io.atomic import write_text_atomic
from gliomics.runtime.checkpoint import BEST, load_checkpoint, save_checkpoint
from gliomics.runtime.fitted import read_fitted, write_fitted

__all__ = ["INTENDED_USE", "LIMITATIONS", "limitations", "package_model"]

#: The keys of ``best.pt`` a packaged model keeps.
_KEPT = ("model", "config", "epoch", "best_score", "val_metrics", "pos_weight")
REGIONS = ("WT", "TC", "ET", "NETC", "SNFH", "RC")
INTENDED_USE = ("Research on glioma MRI: segmenting NETC, SNFH, ET and RC from skull-stripped, co-registered T1, "
                "T1ce, T2 and FLAIR (BraTS conventions, e.g. after `gliomics preprocess`), to study methods and "
                "cohorts. Not a medical device; not for diagnosis or treatment decisions.")
LIMITATIONS = ("Its real-case figures come from a handful of public BraTS cases and carry wide intervals. Its marker "
               "heads (IDH, 1p/19q, TERT) are not validated on real patients: their probabilities on a real scan are "
               "flagged and the WHO CNS5 suggestion withheld. Inputs must be skull-stripped; post-operative cavities "
               "(RC) were seen on phantoms only.")


def limitations(training_data: Mapping[str, Any]) -> str:
    """The card's limitations: what the model was trained on, then :data:`LIMITATIONS`."""
    if not training_data.get("other_cases"):
        return "Trained on phantoms only (gliomics' generator, domain-randomised). " + LIMITATIONS
    return (f"Trained on {training_data['phantom_cases']} phantoms and {training_data['other_cases']} real cases "
            "(their segmentations only; the marker heads learnt from phantoms alone): a figure on one of those cases "
            "is only honest when cross-validated. " + LIMITATIONS)


def _segmentation(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Mean Dice and BraTS 2024 lesion-wise Dice per region, with their 95 % CIs, of an evaluation summary."""
    seg = summary.get("segmentation") or {}
    out = {}
    for region in REGIONS:
        stats = seg.get(region) or {}
        out[region] = {k: stats[k] for k in ("dice", "lesion_dice") if k in stats}
        # a sensitivity of None: no reference holds the region, and its Dice of 1 only says none was predicted
        if "sensitivity" in stats and stats["sensitivity"] is None:
            out[region]["in_no_reference"] = True
    return {"cases": summary.get("cases"), "regions": out}


def _read_summary(folder: Path | str) -> dict[str, Any]:
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise InputError(f"{path}: not found (give a folder written by `gliomics evaluate`)")
    return json.loads(path.read_text(encoding="utf-8"))


def _card_markdown(card: Mapping[str, Any]) -> str:
    """``MODEL_CARD.md``: the card for people."""
    data = card["training_data"]
    lines = [f"# Model card: {card['name']}", "", f"Network `{card['model']}`; {card['training']['budget']}.", "",
             "## Training data", "", f"{data['cases']} cases ({data['phantom_cases']} phantoms, "
             f"{data['other_cases']} other" + (f": {', '.join(data['other_case_ids'])}" if data.get("other_case_ids")
                                               else "") + ")."]
    start = card["training"].get("started_from")
    if start:
        lines += ["", f"Fine-tuned from {start['name']} ({start['budget']}; {start['training_data']})."]
    lines += ["", "## Measured results", ""]
    for name, result in card["results"].items():
        lines += [f"**{name}** ({result['cases']} cases; {result['source']}): mean Dice [95% CI] / BraTS 2024 "
                  "lesion-wise Dice", "", "| region | Dice | lesion-wise Dice |", "|---|---|---|"]
        for region, stats in result["regions"].items():
            if stats.get("in_no_reference"):
                lines.append(f"| {region} | – (in no reference) | – |")
                continue
            cells = [f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]" if isinstance(s, dict) and "mean" in s else "–"
                     for s in (stats.get("dice"), stats.get("lesion_dice"))]
            lines.append(f"| {region} | {cells[0]} | {cells[1]} |")
        lines.append("")
    lines += ["## Intended use", "", card["intended_use"], "", "## Limitations", "", card["limitations"], "",
              "## Markers", "", "Validated on real patients: "
              f"{str(card['markers']['validated_on_real_patients']).lower()} "
              f"(evidence: {card['markers']['evidence'] or 'none'})."]
    return "\n".join(lines) + "\n"


def _started_from(source: str | None) -> dict[str, str] | None:
    """The packaged card of the model a fine-tuned run started from: its name, budget and training data."""
    if source is None:
        return None
    from gliomics.inference.pretrained import resolve_model
    from gliomics.runtime.checkpoint import checkpoint_file

    folder = checkpoint_file(resolve_model(source)).parent
    path = folder / MODEL_CARD_FILE
    card = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data = card.get("training_data") or {}
    budget = (card.get("training") or {}).get("budget")
    summary = folder / "train_summary.json"
    if budget is None and summary.is_file():  # a run folder, not a packaged model
        train = json.loads(summary.read_text(encoding="utf-8"))
        budget = f"{train.get('epochs_run')} epochs ({train.get('steps_run')} optimizer steps)"
    return {"source": source, "name": card.get("name", folder.name), "budget": budget or "budget unknown",
            "training_data": f"{data.get('phantom_cases', '?')} phantoms, {data.get('other_cases', '?')} other cases"}


def package_model(run: Path | str, out: Path | str, *, evaluations: Mapping[str, tuple[Path | str, str]],
                  name: str) -> Path:
    """Write the packaged model ``name`` of ``run`` into ``out`` (replacing what is there).

    Args:
        run: A finished run folder (``best.pt``, ``fitted.json``, ``config.yaml``, ``model_card.json``,
            ``train_summary.json``).
        out: The packaged model's folder (``gliomics/pretrained/<name>`` for the shipped one).
        evaluations: Result name -> (an evaluation folder of ``gliomics evaluate``, where its cases come from);
            their figures with CIs go into the model card.
        name: The model's name in its card.

    Raises:
        InputError: the run lacks one of its files, or an evaluation folder has no ``summary.json``.
    """
    run, out = Path(run), Path(out)
    for needed in (BEST, "config.yaml", MODEL_CARD_FILE, "train_summary.json"):
        if not (run / needed).is_file():
            raise InputError(f"{run / needed}: not found (package a finished run)")
    results = {label: {**_segmentation(_read_summary(folder)), "source": source}
               for label, (folder, source) in evaluations.items()}
    train = json.loads((run / "train_summary.json").read_text(encoding="utf-8"))
    card = json.loads((run / MODEL_CARD_FILE).read_text(encoding="utf-8"))
    hardware = train.get("hardware") or {}
    card.update(name=name, results=results, intended_use=INTENDED_USE,
                limitations=limitations(card.get("training_data") or {}),
                training={"epochs": train.get("epochs_run"), "steps": train.get("steps_run"),
                          "best_epoch": train.get("best_epoch"), "seed": train.get("seed"),
                          "budget": f"{train.get('epochs_run')} epochs ({train.get('steps_run')} optimizer steps), "
                                    f"{train.get('elapsed_seconds', 0) / 60:.0f} min on {hardware.get('cpu')} "
                                    f"({hardware.get('threads')} threads)",
                          "started_from": _started_from((card.get("training_data") or {}).get("started_from"))})
    state = load_checkpoint(run / BEST)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_checkpoint({k: state[k] for k in _KEPT if k in state}, out / BEST)
    write_fitted(out, read_fitted(run, state))
    shutil.copy(run / "config.yaml", out / "config.yaml")
    write_text_atomic(out / MODEL_CARD_FILE, json.dumps(card, indent=2, default=float))
    write_text_atomic(out / "MODEL_CARD.md", _card_markdown(card))
    return out
