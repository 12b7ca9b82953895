"""Replace one ``## Section`` of a results file (``benchmarks/results/<topic>.md``) and keep the others.

``benchmarks/RESULTS.md`` is the index of the topic files; each benchmark's ``--write`` names the topic file its
section belongs to (its usage line says which).
"""

from __future__ import annotations

import re
from pathlib import Path


def _find_heading(text: str, heading: str) -> int:
    """Where the line that is exactly ``heading`` starts in ``text``, or -1 (a heading that merely starts with it,
    such as the same title with ", 288 training cases", is another section)."""
    found = re.search(rf"^{re.escape(heading)}$", text, flags=re.MULTILINE)
    return found.start() if found else -1


def write_section(path: Path, heading: str, body: str) -> None:
    """Put ``body`` (which starts with ``heading``) in place of the section ``heading`` of ``path``, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = _find_heading(text, heading)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        nxt = text.find("\n## ", start + len(heading))
        text = text[:start] + body + (text[nxt + 1 :] if nxt != -1 else "")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    tmp.replace(path)


def publish(body: str, path: Path | None, heading: str) -> None:
    """Print a benchmark's section and, if ``path`` is given, put it in place of ``heading`` there."""
    print(body)
    if path is not None:
        write_section(path, heading, body)
