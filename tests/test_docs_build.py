"""The documentation site builds with ``mkdocs build --strict`` and its command-line reference covers every command.

mkdocs and mkdocs-material are in the ``dev`` extra: where they are missing this test fails, it does not skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer.main

from gliomics.cli.main import app

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strict_and_cli_reference_lists_every_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"mkdocs build --strict failed (is mkdocs-material installed? `pip install -e '.[dev]'`):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")

    page = site / "reference" / "cli" / "index.html"
    assert page.is_file(), f"{page}: the command-line reference was not built"
    html = page.read_text(encoding="utf-8")
    commands = sorted(typer.main.get_command(app).commands)
    assert len(commands) >= 16
    missing = [name for name in commands if f"gliomics {name}" not in html]
    assert not missing, f"commands missing from the CLI reference: {missing}"
    # the results pages come from benchmarks/results/
    for topic in sorted(p.stem for p in (ROOT / "benchmarks" / "results").glob("*.md")):
        assert (site / "benchmarks" / topic / "index.html").is_file(), f"results page {topic} was not built"
