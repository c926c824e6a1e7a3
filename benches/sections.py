"""Sections of BENCHMARKS.md that a benches/ script owns: the text between
``<!-- benches/<script>: begin -->`` and ``<!-- benches/<script>: end -->``,
after the report `benches/compare.py` writes (which keeps them)."""

from __future__ import annotations

from pathlib import Path


def markers(script: str) -> tuple[str, str]:
    """The begin and end markers of ``script``'s section."""
    return f"<!-- benches/{script}: begin -->", f"<!-- benches/{script}: end -->"


def write_section(path: Path, script: str, body: str) -> None:
    """Put ``body`` between ``script``'s markers in ``path``, replacing
    what was there, or at the end when the file has no such section."""
    begin, end = markers(script)
    section = f"{begin}\n{body.strip()}\n{end}\n"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        a, rest = text.split(begin, 1)
        _, b = rest.split(end, 1)
        text = a + section + b.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
