"""Replace one ``## Section`` of ``benchmarks/RESULTS.md`` and keep the others."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Put ``body`` (which starts with ``heading``) in place of the section ``heading`` of ``path``, or append it."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    start = text.find(heading)
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
