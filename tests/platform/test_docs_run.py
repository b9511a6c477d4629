"""Docs that run: every example of README.md and docs/ against a platform started here.

The platform tier's ``safepassage run`` (ports and a state directory of its
own), and, for each page, its runnable blocks (``tests/docs_blocks.py``) as a reader would
type them in a second terminal after ``set -a; . .state/demo/demo.env; set
+a``: the shell blocks of a page in one bash (``set -euo pipefail``), its
Python blocks in one interpreter, each in page order, in a folder that looks
like the repository (links to its files, ``.state`` the run's state). A
failure names the block (``docs/x.md:LINE``) and shows its output.

``SAFEPASSAGE_DOCS_PLATFORM=<state dir>`` runs the examples against a
platform that is already running (for writing docs), instead of starting one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs_blocks import REPO, Block, blocks, documents
from tests.platform.runs import Run, wait_for

pytestmark = [pytest.mark.platform, pytest.mark.slow]

BLOCK_TIMEOUT_S = 180.0

_PYTHON_DRIVER = """
import json, sys, traceback
namespace = {"__name__": "__main__"}
for where, code in json.load(sys.stdin):
    print(f"::block {where}", flush=True)
    try:
        exec(compile(code, where, "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print(f"::failed {where}", flush=True)
        sys.exit(1)
"""


@dataclass(frozen=True)
class Platform:
    workspace: Path
    env: dict[str, str]


def runnable(path: Path, language: str) -> list[Block]:
    return [b for b in blocks(path) if b.language == language and b.excerpt is None]


PAGES = [p for p in documents() if runnable(p, "sh") or runnable(p, "python")]


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name: value for name, value in pairs if not name.startswith("#")}


def _workspace(folder: Path, state_dir: Path) -> Path:
    """A folder that looks like the repository to the examples, with the run's state."""
    folder.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in {".state", ".git"}:
            (folder / entry.name).symlink_to(entry)
    (folder / ".state").symlink_to(state_dir)
    return folder


@pytest.fixture(scope="module")
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """The tier's run (or ``SAFEPASSAGE_DOCS_PLATFORM``'s), and a workspace over its state."""
    existing = os.environ.get("SAFEPASSAGE_DOCS_PLATFORM")
    if existing:
        state_dir = Path(existing)
    else:
        run: Run = request.getfixturevalue("run")
        wait_for(run, "SafePassage is running", 360.0)
        state_dir = run.state_dir
    workspace = _workspace(tmp_path_factory.mktemp("docs") / "workspace", state_dir)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SAFEPASSAGE_", "PYTEST", "COV_", "COVERAGE"))
    }
    env |= _read_env(state_dir / "demo" / "demo.env")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO)
    return Platform(workspace, env)


def _shell(platform: Platform, page: list[Block]) -> subprocess.CompletedProcess[str]:
    script = "".join(f"echo '::block {b.where}' >&2\n{b.text}" for b in page)
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=platform.workspace,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S * len(page),
        check=False,
    )


def _python(platform: Platform, page: list[Block]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PYTHON_DRIVER],
        input=json.dumps([[b.where, b.text] for b in page]),
        cwd=platform.workspace,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S * len(page),
        check=False,
    )


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_examples_of_a_page_run_against_the_platform(platform: Platform, path: Path) -> None:
    for language, run in (("sh", _shell), ("python", _python)):
        page = runnable(path, language)
        if not page:
            continue
        done = run(platform, page)
        if done.returncode != 0:
            marks = [line for line in (done.stderr + done.stdout).splitlines() if "::block" in line]
            where = marks[-1].split("::block ", 1)[-1] if marks else "?"
            pytest.fail(
                f"{where}: the example failed (exit {done.returncode})\n"
                f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
            )
