"""Mutation testing of the statistics, scoring, mapping and network-block code with mutmut (``make mutation``).

    python benchmarks/tools/mutation.py run [--fraction 0.15] [--seed 0]   # all mutants, or a stratified random sample
    python benchmarks/tools/mutation.py report [--out benchmarks/results/mutation.md]

``run`` lists the mutants mutmut makes of the files that ``[tool.mutmut] only_mutate`` names (mutmut's own mutation
code, so the names are the ones ``mutmut run`` uses), draws the same fraction of every file at random with a fixed
seed when ``--fraction`` is below 1, and hands the names to ``mutmut run``. ``report`` reads the results mutmut keeps
under ``mutants/`` for the mutants of the last run and writes the surviving share per file, with a Wilson 95 % interval
where a sample was drawn, and every survivor with its diff. Equivalent mutants (no test can tell them from the
original) are listed with the reason in ``EQUIVALENT`` and counted apart.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]
LAST_RUN = ROOT / "mutants" / "gliomics-last-run.json"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "mutation.md"

_DTYPE = "the values are numbers already converted (or converted again) to that type downstream"
_IMPORT = ("FEATURE_NAMES = _names() runs once when the module is imported, before mutmut switches a mutant on: "
           "no test can reach it (a changed name list fails every readout test when it is made by hand)")
#: Mutants that behave exactly as the original on every input the code can receive, with the reason.
EQUIVALENT: dict[str, str] = {
    "gliomics.evaluation.auc.x_auc_ci_bootstrap__mutmut_33": "the chunk is 1 only with over a million cases",
    "gliomics.evaluation.bootstrap.x__finite__mutmut_4": f"the mean of ints equals the mean of floats; {_DTYPE}",
    "gliomics.evaluation.bootstrap.x_paired_auc_difference_ci__mutmut_11": _DTYPE,
    "gliomics.evaluation.bootstrap.x_paired_auc_difference_ci__mutmut_15": _DTYPE,
    "gliomics.evaluation.classification.x_binary_metrics__mutmut_104": "sklearn ignores labels= with average='binary'",
    "gliomics.evaluation.classification.x_binary_metrics__mutmut_105": "sklearn ignores labels= with average='binary'",
    "gliomics.evaluation.calibration_metrics.x_calibration__mutmut_122": (
        "the message of a consistency check against sklearn's calibration_curve that cannot fail"),
    "gliomics.evaluation.compare.x_compare_runs__mutmut_165": "the folder exists by then (each run's predictions)",
    "gliomics.evaluation.decisions.x__spearman__mutmut_39": "SciPy lower-cases the method name",
    "gliomics.evaluation.evaluate.x__bayes_auc__mutmut_33": _DTYPE,
    "gliomics.evaluation.evaluate.x__decisions__mutmut_27": _DTYPE,
    "gliomics.evaluation.interpretability.x_explain_cohort__mutmut_101": (
        "tables.md is written by evaluate without trailing blanks: rstrip() and rstrip('\\n') agree"),
    "gliomics.evaluation.robustness.x__heat_map__mutmut_105": "the colour bar takes its space from the only axes",
    "gliomics.evaluation.robustness.x__heat_map__mutmut_3": "matplotlib accepts backend names in any case",
    "gliomics.evaluation.robustness.x_robustness_table__mutmut_48": "None and {} are both falsy: the row says 'ref.'",
    "gliomics.evaluation.segmentation.x_lesion_wise__mutmut_114": "minlength only pads zeros that flatnonzero drops",
    "gliomics.evaluation.segmentation.x_lesion_wise__mutmut_116": "minlength only pads zeros that flatnonzero drops",
    "gliomics.evaluation.tables.x_comparison_table__mutmut_108": "3 is fmt's default number of decimals",
    "gliomics.inference.calibration.x_operating_thresholds__mutmut_48": (
        "keep always holds index 0 (the ROC curve starts at fpr 0): the else branch cannot run"),
    "gliomics.inference.calibration.x_operating_thresholds__mutmut_52": (
        "keep always holds index 0 (the ROC curve starts at fpr 0): the else branch cannot run"),
    "gliomics.inference.postprocess.x_relabel_detached_cavities__mutmut_46": "a CPU tensor stays on the CPU",
    "gliomics.inference.postprocess.x_relabel_small_components__mutmut_7": "a limit of 0 removes nothing either way",
    "gliomics.inference.predictor.xǁPredictorǁpredict__mutmut_94": "the affine is float64 already",
    "gliomics.inference.tumour_features.x__names__mutmut_1": _IMPORT,
    "gliomics.inference.tumour_features.x__names__mutmut_3": _IMPORT,
    "gliomics.inference.tumour_features.x__names__mutmut_8": _IMPORT,
    "gliomics.inference.tumour_features.x__names__mutmut_19": _IMPORT,
    "gliomics.inference.tumour_features.x__names__mutmut_32": _IMPORT,
    "gliomics.losses.x_pos_weight_from_labels__mutmut_4": "None becomes NaN in the float conversion of each column",
    "gliomics.losses.x_pos_weight_from_labels__mutmut_22": "np.asarray(..., dtype=float) turns None into NaN itself",
    "gliomics.losses.xǁMultiTaskLossǁ_marker_targets__mutmut_24": (
        "the targets are smoothed and masked in float arithmetic right after: integer targets give the same loss"),
    "gliomics.losses.xǁMultiTaskLossǁsegmentation__mutmut_19": "the weights are sliced to the number of heads",
    "gliomics.losses.xǁMultiTaskLossǁwhole_tumour__mutmut_28": "nearest is F.interpolate's default mode",
    "gliomics.models.blocks.cmaf.xǁCMAFǁforward__mutmut_29": "float('-INF') is float('-inf')",
    "gliomics.models.blocks.cmaf.xǁSequenceEmbeddingǁ__init____mutmut_41": "MONAI upper-cases adn_ordering",
    "gliomics.models.blocks.decoder.xǁUpBlockǁ__init____mutmut_22": "3 is MONAI Convolution's default kernel size",
    "gliomics.models.blocks.swin_branch.xǁSwinBranchǁ__init____mutmut_36": "i is at most 2 there",
    "gliomics.preprocess.native.x_seg_to_native__mutmut_42": "save_image writes uint8 (dtype=np.uint8) either way",
}


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def mutated_files() -> list[Path]:
    """The source files ``only_mutate`` selects, relative to the repository root."""
    patterns = _config()["only_mutate"]
    files = sorted(p.relative_to(ROOT) for p in (ROOT / "src").rglob("*.py"))
    return [f for f in files if any(fnmatch.fnmatch(str(f), pat) for pat in patterns)]


def mutant_names(path: Path) -> list[str]:
    """The names mutmut gives to the mutants of one file (its own code makes them, honouring pragmas and patterns)."""
    from mutmut.mutation.file_mutation import mutate_file_contents
    from mutmut.utils.format_utils import get_mutant_name

    mutated = mutate_file_contents(str(path), (ROOT / path).read_text())
    return [get_mutant_name(path, name) for name in mutated.mutant_names]


def draw(names_by_file: dict[Path, list[str]], fraction: float, seed: int) -> list[str]:
    """The same fraction of every file's mutants (at least one per file), drawn at random with ``seed``."""
    import random

    rng = random.Random(seed)
    chosen: list[str] = []
    for path in sorted(names_by_file):
        names = names_by_file[path]
        if fraction >= 1:
            chosen += names
        elif names:
            chosen += sorted(rng.sample(names, max(1, round(fraction * len(names)))))
    return chosen


def run(fraction: float, seed: int, max_children: int | None, only: str | None = None) -> int:
    """Test the drawn mutants; with ``only`` (a glob, or ``survivors``), test again those of the last run's mutants
    that match it (e.g. after new tests), keeping that run's draw."""
    import os

    os.chdir(ROOT)
    if only:
        record = json.loads(LAST_RUN.read_text())
        alive = statuses(record["names"]) if only == "survivors" else {}
        chosen = [n for n in record["names"]
                  if (alive.get(n) in ("survived", "no tests") if only == "survivors" else fnmatch.fnmatch(n, only))]
        print(f"{len(chosen)} of the last run's {len(record['names'])} mutants match {only}", flush=True)
    else:
        names_by_file = {path: mutant_names(path) for path in mutated_files()}
        chosen = draw(names_by_file, fraction, seed)
        total = sum(len(v) for v in names_by_file.values())
        LAST_RUN.parent.mkdir(exist_ok=True)
        LAST_RUN.write_text(json.dumps({"fraction": fraction, "seed": seed, "total": total, "names": chosen}))
        print(f"{len(chosen)} of {total} mutants ({fraction:.0%} of each file, seed {seed})", flush=True)
    if not chosen:
        return 0
    cmd = [str(Path(sys.executable).with_name("mutmut")), "run", *chosen]
    if max_children:
        cmd[2:2] = ["--max-children", str(max_children)]
    started = time.monotonic()
    rc = subprocess.call(cmd, cwd=ROOT)
    record = json.loads(LAST_RUN.read_text())
    seconds = round(time.monotonic() - started)
    if only:
        record["rerun_wall_s"] = record.get("rerun_wall_s", 0) + seconds
    else:
        record["wall_s"] = seconds
    LAST_RUN.write_text(json.dumps(record))
    return rc


def statuses(names: list[str]) -> dict[str, str]:
    """mutmut's verdict for each mutant, read from the ``.meta`` files it keeps beside the mutated sources."""
    from mutmut.stats import status_by_exit_code

    codes: dict[str, int | None] = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return {n: status_by_exit_code[codes.get(n)] for n in names}


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def diff_of(name: str) -> str:
    out = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "show", name], cwd=ROOT,
                         capture_output=True, text=True).stdout
    lines = [ln for ln in out.splitlines() if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))]
    return "\n".join(lines)


def report(out: Path) -> None:
    last = json.loads(LAST_RUN.read_text())
    names = last["names"]
    status = statuses(names)
    by_file: dict[str, Counter] = defaultdict(Counter)
    for name, st in status.items():
        module = name.split(".x_")[0].split(".xǁ")[0]
        by_file[module]["equivalent" if name in EQUIVALENT and st == "survived" else st] += 1
    selection = " ".join(_config()["pytest_add_cli_args_test_selection"] + _config()["pytest_add_cli_args"])
    rerun = f", then {last['rerun_wall_s']} s testing survivors again" if last.get("rerun_wall_s") else ""
    lines = ["# Mutation testing", "",
             f"`make mutation MUTATION_FRACTION={last['fraction']}` (seed {last['seed']}): mutmut {_mutmut_version()}, "
             f"{len(names)} of the {last['total']} mutants of the files that `[tool.mutmut] only_mutate` names in "
             f"`pyproject.toml`, tested by `pytest {selection}`. Machine: {_cpu()}; {last.get('wall_s', '?')} s"
             f"{rerun}.", "",
             "| module | mutants | killed | survived | equivalent | timeout | no tests | other "
             "| surviving share (95 % CI) |",
             "|---|---|---|---|---|---|---|---|---|"]
    totals: Counter = Counter()
    for module in sorted(by_file):
        c = by_file[module]
        totals.update(c)
        lines.append(_row(module, c))
    lines.append(_row("**all**", totals))
    lines += ["", "Timeouts are counted apart from the kills; the surviving share is survived + no tests over all the "
              "mutants less the equivalent ones.", ""]
    if EQUIVALENT:
        lines += ["## Equivalent mutants", ""] + [f"- `{k}`: {v}" for k, v in sorted(EQUIVALENT.items())] + [""]
    survivors = sorted(n for n, st in status.items() if st in ("survived", "no tests") and n not in EQUIVALENT)
    lines += [f"## Survivors ({len(survivors)})", ""]
    for name in survivors:
        lines += [f"- `{name}` ({status[name]})", "", "```diff", diff_of(name), "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def _row(module: str, c: Counter) -> str:
    n = sum(c.values())
    alive = c["survived"] + c["no tests"]
    known = {"killed", "survived", "equivalent", "timeout", "no tests"}
    other = sum(v for k, v in c.items() if k not in known)
    lo, hi = wilson(alive, n - c["equivalent"]) if n - c["equivalent"] else (math.nan, math.nan)
    share = alive / max(1, n - c["equivalent"])
    return (f"| {module} | {n} | {c['killed']} | {c['survived']} | {c['equivalent']} | {c['timeout']} | "
            f"{c['no tests']} | {other} | {share:.1%} ({lo:.1%}–{hi:.1%}) |")


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def _cpu() -> str:
    from gliomics.runtime.hardware import cpu_model_name

    return f"{cpu_model_name()}, {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--fraction", type=float, default=1.0)
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--max-children", type=int, default=None)
    p_run.add_argument("--only", default=None, help="test again the last run's mutants whose names match this glob, "
                       "or its survivors with 'survivors'")
    p_rep = sub.add_parser("report")
    p_rep.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.command == "run":
        return run(args.fraction, args.seed, args.max_children, args.only)
    report(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
