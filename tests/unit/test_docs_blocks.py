"""Every code block of README.md and docs/ runs, parses, or says why it is an excerpt.

The blocks that run are executed against a running platform by
``tests/platform/test_docs_run.py``; here, with no process, each is checked
for what can be checked statically: Python compiles, shell parses (``bash -n``),
JSON and YAML load.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docs_blocks import DATA, RUNNABLE, Block, all_blocks, blocks

BLOCKS = all_blocks()


def test_the_readme_and_the_docs_have_blocks_to_check() -> None:
    assert len(BLOCKS) > 20
    assert any(b.path.name == "README.md" for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_a_block_runs_is_data_or_is_marked_an_excerpt(block: Block) -> None:
    assert block.excerpt is not None or block.language in RUNNABLE | DATA, (
        f"{block.where}: a ```{block.language or '(no language)'} block that does not run; "
        "make it runnable or mark it <!-- excerpt: why -->"
    )


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_a_block_parses_as_its_language(block: Block) -> None:
    if block.excerpt is not None and block.language not in DATA:
        return
    if block.language == "python":
        compile(block.text, block.where, "exec")
    elif block.language == "sh":
        checked = subprocess.run(
            ["bash", "-n"], input=block.text, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, f"{block.where}: {checked.stderr}"
    elif block.language == "json":
        json.loads(block.text)
    elif block.language == "yaml":
        yaml.safe_load(block.text)


def test_blocks_and_excerpt_markers_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "intro\n\n```sh\necho one\n```\n\n<!-- excerpt: a synopsis -->\n```\nsafepassage x|y\n```\n"
        "\n  ```python\n  print(2)\n  ```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.line, b.language, b.text, b.excerpt) for b in found] == [
        (3, "sh", "echo one\n", None),
        (8, "", "safepassage x|y\n", "a synopsis"),
        (12, "python", "print(2)\n", None),
    ]
