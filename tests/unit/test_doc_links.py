"""Every relative link in the repository's Markdown points at a file a clone has.

The README once linked ``../shared/DESIGN.md``, a file outside the repository
that no clone carries. Links to public specifications (``https://``) are
references, not parts of the documentation, and are left alone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return [REPO / name for name in listed if not name.startswith("tests/")]


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(path.read_text(encoding="utf-8"))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_readme_and_docs_are_found() -> None:
    names = {p.relative_to(REPO).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/ARCHITECTURE.md", "SECURITY.md", "PRIVACY.md"} <= names


def broken_links(path: Path, root: Path) -> list[str]:
    """The relative links of ``path`` that leave ``root`` or name nothing."""
    broken = []
    for target in relative_links(path):
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(root) or not resolved.exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_stay_inside_the_repository_and_exist(path: Path) -> None:
    assert broken_links(path, REPO) == [], f"{path.name} links to what a clone does not have"


def test_a_link_outside_the_repository_or_to_a_missing_file_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "DESIGN.md").write_text("outside", encoding="utf-8")
    (root / "docs" / "here.md").write_text("here", encoding="utf-8")
    page = root / "README.md"
    page.write_text(
        "[a](../shared/DESIGN.md) [b](docs/here.md#part) [c](docs/gone.md) "
        "[d](https://example.org/x.md) [e](#top)",
        encoding="utf-8",
    )
    assert broken_links(page, root) == ["../shared/DESIGN.md", "docs/gone.md"]
