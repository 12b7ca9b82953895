"""mkdocs hooks of the gliomics documentation (``hooks:`` in ``mkdocs.yml``); nothing here touches the network.

- The results pages: every ``benchmarks/results/<topic>.md`` of the repository becomes the page
  ``benchmarks/<topic>.md`` of the site, so that the results are written once, next to the benchmarks that make them;
  their figures (``benchmarks/results/figures/*.png``) come along.
- The command-line reference: ``<!-- gliomics-cli -->`` in a page is replaced by the help of every command of the
  typer app (``gliomics.cli.main.app``), rendered by typer's own Markdown writer at build time, so that the reference
  cannot drift from the code.
- The schemas: ``<!-- gliomics-record-schema -->`` becomes the JSON schema of the prediction record
  (``gliomics.io.predictions.PredictionRecord``) and ``<!-- gliomics-options-schema -->`` that of the prediction options
  (``gliomics.config.PredictOptions``), from the pydantic models themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARKER = "<!-- gliomics-cli -->"
SCHEMA_MARKERS = {"<!-- gliomics-record-schema -->": ("gliomics.io.predictions", "PredictionRecord"),
                  "<!-- gliomics-options-schema -->": ("gliomics.config", "PredictOptions")}


def on_files(files, config):
    for path in sorted(RESULTS.glob("*.md")):
        files.append(File.generated(config, f"benchmarks/{path.name}", content=path.read_text(encoding="utf-8")))
    for path in sorted((RESULTS / "figures").glob("*.png")):  # the figures the results pages show
        files.append(File.generated(config, f"benchmarks/figures/{path.name}", content=path.read_bytes()))
    return files


def _importable() -> None:
    try:
        import gliomics  # noqa: F401
    except ImportError:  # building from a checkout without the package installed
        sys.path.insert(0, str(ROOT / "src"))


def schema_markdown(module: str, name: str) -> str:
    """The JSON schema of a pydantic model of gliomics, as a fenced block."""
    import importlib
    import json

    _importable()
    model = getattr(importlib.import_module(module), name)
    return "```json\n" + json.dumps(model.model_json_schema(), indent=2) + "\n```"


def cli_markdown() -> str:
    """The help of ``gliomics`` and of every registered command, as Markdown (typer's ``utils docs`` writer)."""
    _importable()
    import click
    import typer.main
    from typer.cli import get_docs_for_click

    from gliomics.cli.main import app

    command = typer.main.get_command(app)
    text = get_docs_for_click(obj=command, ctx=click.Context(command, info_name="gliomics"), name="gliomics")
    # one level down: the page has its own title
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    for marker, (module, name) in SCHEMA_MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, schema_markdown(module, name))
    return markdown
