"""The bad-input battery of issue #10, run for real: every entry of ``tests/reliability/reliability_battery.py``
through the CLI (in-process), checked as the tests check it, and written as the "## Reliability" table of
``benchmarks/results/reliability.md`` (input, command, exit status, message excerpt).

Usage: python benchmarks/tools/reliability_table.py [--write benchmarks/results/reliability.md] [--run RUN_DIR]
       [--only ID ...]

Without ``--run`` a tiny run is trained first, as the tests' ``tiny_run`` fixture does (8 phantom cases at 4 mm,
one epoch). The exit status is 1 if any entry is not handled.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from reliability_battery import BATTERY, Workspace, check, permissions_ignored, run_entry  # noqa: E402
from results_md import write_section  # noqa: E402

HEADING = "## Reliability"


def tiny_run(root: Path) -> Path:
    """Train the tests' tiny run: 8 phantom cases at 4 mm, the shrunk mgmtnet_cpu, one epoch."""
    from gliomics.phantom import PhantomSettings, generate_cohort
    from gliomics.training.trainer import run_training
    from gliomics_testing import tiny_config

    cohort, run = root / "phantom", root / "run"
    generate_cohort(cohort, PhantomSettings(cases=8, spacing=4.0, sites=2, seed=3), progress=False)
    run_training(tiny_config(), data=cohort, markers=cohort / "markers.csv", out=run, epochs=1, device="cpu",
                 progress=False)
    return run


def _excerpt(message: str, root: Path, width: int = 150) -> str:
    text = message.removeprefix("gliomics: error: ").replace(f"{root}{os.sep}", "")
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


def run_battery(work: Path, run: Path | None, only: list[str]) -> list[dict]:
    """Run the entries (all, or those whose id contains one of ``only``); one result dict per entry."""
    results = []
    for entry in BATTERY:
        if only and not any(o in entry.id for o in only):
            continue
        ws = Workspace(work / entry.id, run)
        ws.root.mkdir(parents=True)
        if entry.needs_unprivileged and permissions_ignored(ws.root):
            results.append({"entry": entry, "status": "skipped", "exit": "–",
                            "message": f"not run: as uid {os.geteuid()} chmod does not block writes, so no folder "
                                       "can be made read-only (the test skips it too)", "problems": []})
            continue
        t0 = time.perf_counter()
        inv, outcome = run_entry(entry, ws)
        problems = check(entry, inv, ws, outcome)
        message = outcome.message or ("ran; wrote " + ", ".join(outcome.new_files) if outcome.new_files else "")
        results.append({"entry": entry, "status": "handled" if not problems else "NOT HANDLED",
                        "exit": outcome.exit_code, "message": _excerpt(message, ws.root), "problems": problems,
                        "seconds": time.perf_counter() - t0})
        print(f"{entry.id:40s} exit {outcome.exit_code}  {results[-1]['status']}"
              + (f": {'; '.join(problems)}" if problems else ""), flush=True)
    return results


def section(results: list[dict], seconds: float) -> str:
    handled = sum(r["status"] == "handled" for r in results)
    skipped = sum(r["status"] == "skipped" for r in results)
    import torch

    lines = [
        HEADING, "",
        "Command: `.venv/bin/python benchmarks/tools/reliability_table.py --write benchmarks/results/reliability.md` "
        "(the entries of "
        "`tests/reliability/reliability_battery.py`, which `tests/reliability/test_bad_input_battery.py` runs as "
        "tests).", "",
        f"Machine: {platform.machine()}, nproc {os.cpu_count()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}, CPU only; {seconds:.0f} s for the whole battery, the tiny run's training included.", "",
        f"**{handled} of {len(results)} inputs handled**" + (f", {skipped} not run (see its row)" if skipped else "")
        + ". Handled means: the exit status in the table (2 for bad input, 0 where the input must work), exactly one "
        "`gliomics: error:` line (or one `failed <case>:` line under `--keep-going`) that names the culprit, no new "
        "file in the output location (apart from the outputs of the inputs that must work, and of the good cases "
        "under `--keep-going`), no temporary file "
        "anywhere, and no code run from a pickled object. Paths in the messages are shown relative to each entry's "
        "work folder.", "",
        "The rest of the issue is checked by tests, not measured here: `tests/reliability/test_crash_safety.py` "
        "(SIGKILL of a real training and prediction process, then resume; `pytest -m slow`), `test_safe_loading.py` "
        "(pickled objects in checkpoints and weights, YAML tags, strict configs, confined case paths), "
        "`test_offline_reproducible.py` (phantom → train → predict → evaluate with sockets blocked; seed, versions and "
        "config digest in every output JSON; a second run with the same seed gives identical metrics, weights and "
        "labels, `-m slow`).", "",
        "| input | command | exit status | message excerpt |",
        "|---|---|---:|---|",
    ]
    for r in results:
        entry = r["entry"]
        status = "" if r["status"] == "handled" else f" **{r['status']}**"
        lines.append(f"| {entry.input} | `{entry.command}` | {r['exit']}{status} | {r['message']} |")
    failed = [r for r in results if r["problems"]]
    for r in failed:
        lines.append(f"\n`{r['entry'].id}` not handled: {'; '.join(r['problems'])}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None,
                        help="Results file to update, benchmarks/results/reliability.md (else print the section)")
    parser.add_argument("--run", type=Path, default=None, help="a trained run folder (else a tiny one is trained)")
    parser.add_argument("--only", nargs="*", default=[], help="run only entries whose id contains one of these")
    args = parser.parse_args()
    # the commands' log lines would otherwise go to the streams of the first command's test runner
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gliomics-reliability-") as tmp:
        work = Path(tmp)
        run = args.run if args.run is not None else tiny_run(work / "tiny")
        results = run_battery(work / "battery", run, args.only)
        text = section(results, time.perf_counter() - t0)
        for path in work.rglob("*"):  # a read-only folder of an unprivileged run must not block the clean-up
            if path.is_dir():
                path.chmod(0o755)
    if args.write is not None:
        write_section(args.write, HEADING, text)
        print(f"wrote {HEADING!r} to {args.write}")
    else:
        print(text)
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
