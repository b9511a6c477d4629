"""Docs that run: every example of README.md and docs/ against a platform started here.

A ``safepassage run`` with ports and a state directory of its own, then, for
each page, its runnable blocks (``tests/docs_blocks.py``) as a reader would
type them in a second terminal after ``set -a; . .state/demo/demo.env; set
+a``: the shell blocks of a page in one bash (``set -euo pipefail``), its
Python blocks in one interpreter, each in page order, in a folder that looks
like the repository (links to its files, ``.state`` the run's state). A
failure names the block (``docs/x.md:LINE``) and shows its output.

``SAFEPASSAGE_DOCS_PLATFORM=<state dir>`` runs the examples against a
platform that is already running (for writing docs), instead of starting one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.docs_blocks import REPO, Block, blocks, documents
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READY_S = 300.0
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


@contextlib.contextmanager
def _started(state_dir: Path) -> Iterator[None]:
    broker, intake, console, webhook, metrics = (
        free_port(3),
        free_port(),
        free_port(),
        free_port(),
        free_port(6),
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SAFEPASSAGE_") or name == "SAFEPASSAGE_LOG_LEVEL"
    } | {
        "SAFEPASSAGE_BROKER_PORT": str(broker),
        "SAFEPASSAGE_BROKER_CONTROLLER_PORT": str(broker + 1),
        "SAFEPASSAGE_BROKER_INTERNAL_PORT": str(broker + 2),
        "SAFEPASSAGE_INTAKE_PORT": str(intake),
        "SAFEPASSAGE_CONSOLE_PORT": str(console),
        "SAFEPASSAGE_RUN_METRICS_BASE_PORT": str(metrics),
        "SAFEPASSAGE_RUN_DEMO_WEBHOOK_URL": f"http://127.0.0.1:{webhook}/webhooks",
    }
    log = (state_dir.parent / "run.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "run", "--state-dir", str(state_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    family: set[int] = set()
    try:
        deadline = time.monotonic() + READY_S
        out = state_dir.parent / "run.out"
        while "SafePassage is running" not in out.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"safepassage run did not come up:\n{out.read_text()[-4000:]}")
            with contextlib.suppress(psutil.NoSuchProcess):
                family |= {c.pid for c in psutil.Process(process.pid).children(recursive=True)}
            time.sleep(0.5)
        yield
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            family |= {c.pid for c in psutil.Process(process.pid).children(recursive=True)}
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for pid in family:  # nothing of this run may outlive the module
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                psutil.Process(pid).kill()
        log.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("docs")
    existing = os.environ.get("SAFEPASSAGE_DOCS_PLATFORM")
    state_dir = Path(existing) if existing else folder / "state"
    with contextlib.nullcontext() if existing else _started(state_dir):
        workspace = _workspace(folder / "workspace", state_dir)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("SAFEPASSAGE_", "PYTEST", "COV_", "COVERAGE"))
        }
        env |= _read_env(state_dir / "demo" / "demo.env")
        env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(REPO)
        yield Platform(workspace, env)


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
