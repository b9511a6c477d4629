"""The fenced code blocks of the repository's Markdown, and how each is to be checked.

Docs that run: every block of README.md and docs/*.md is either executed by
``tests/platform/test_docs_run.py`` against a running platform (``sh``,
``python``), parsed as the data it shows (``json``, ``yaml``), or marked as an
excerpt by an HTML comment on the line before its fence::

    <!-- excerpt: a synopsis of the command's options -->

An excerpt says why it does not run (a synopsis, a fragment of a larger
program, output). Anything else (a block with no language, an unknown one) is
an error: a reader cannot tell whether it works.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNABLE = frozenset({"sh", "python"})
DATA = frozenset({"json", "yaml"})
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_EXCERPT = re.compile(r"^\s*<!--\s*excerpt\b(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """Line of the opening fence (1-based)."""
    language: str
    text: str
    excerpt: str | None
    """Why it is not run, when the line before the fence marks it an excerpt."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def documents() -> list[Path]:
    """README.md and docs/*.md, as git tracks them."""
    listed = subprocess.run(
        ["git", "ls-files", "README.md", "docs/*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, language = opening.group(1), opening.group(2)
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            line = lines[end]
            body.append(line[len(indent) :] if line.startswith(indent) else line)
            end += 1
        marker = _EXCERPT.match(lines[index - 1]) if index > 0 else None
        excerpt = marker.group(1).strip(" :") or "excerpt" if marker else None
        found.append(Block(path, index + 1, language, "\n".join(body) + "\n", excerpt))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]
