"""Sections of ``benchmarks/REPORT.md`` written by benchmarks other than ``report.py``.

``scale.py``, ``bench_thrml.py`` and ``gpu_report.py`` each own one region of the
report between ``<!-- section:NAME:start -->`` and ``<!-- section:NAME:end -->``
lines. Each rewrites only its own region (appending it at the end the first time),
and ``report.py`` carries every such region over when it rewrites the rest of the
page, so one benchmark's figures survive another's run.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = re.compile(r"<!-- section:([a-z0-9_-]+):start -->\n(.*?)<!-- section:\1:end -->\n?", re.DOTALL)


def markers(name: str) -> tuple[str, str]:
    """The start and end marker lines of the section ``name``."""
    return f"<!-- section:{name}:start -->", f"<!-- section:{name}:end -->"


def wrapped(name: str, body: str) -> str:
    """``body`` between the markers of ``name``, ending with a newline."""
    start, end = markers(name)
    return f"{start}\n{body.strip()}\n{end}\n"


def sections_of(text: str) -> dict[str, str]:
    """``{name: whole marked region}`` of every marked section in ``text``, in order."""
    return {match.group(1): match.group(0).rstrip("\n") + "\n" for match in MARKER.finditer(text)}


def upsert_section(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``, or appended when it has none."""
    region = wrapped(name, body)
    existing = sections_of(text).get(name)
    if existing is not None:
        return text.replace(existing, region, 1)
    return text.rstrip("\n") + "\n\n" + region


def carry_sections(old: str, new: str) -> str:
    """``new`` with every marked section of ``old`` that ``new`` lacks appended, in ``old``'s order."""
    present = sections_of(new)
    for name, region in sections_of(old).items():
        if name not in present:
            new = new.rstrip("\n") + "\n\n" + region
    return new


def write_section(path: Path, name: str, body: str) -> None:
    """Rewrite the section ``name`` of the Markdown file at ``path`` (created when missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark report\n"
    path.write_text(upsert_section(text, name, body), encoding="utf-8")
