"""The layers of DESIGN.md, checked on every import of every module.

``schemas`` (the contract) depends on no other package of ours; ``streams``
(Kafka plumbing) on none above it; the pure core of ``processors`` on
nothing that talks to Kafka, Faust or the network, and not on
``connectors``. The static check reads each module's imports (lazy ones
inside functions too); the run-time check imports the whole pure core in a
fresh interpreter and looks at what was loaded, so an indirect import
through an allowed package is caught as well.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OURS = {"schemas", "streams", "processors", "connectors", "infra"}

BINDINGS = {"router"}
"""Modules and packages of ``processors/`` that bind the core to Faust and RocksDB.

``processors/router/`` is the Faust binding; everything else directly in
``processors/`` is the pure core."""
PURE_CORE = sorted(
    f"processors.{p.stem}"
    for p in (REPO / "processors").glob("*.py")
    if p.stem != "__init__" and p.stem not in BINDINGS
)
PURE_ALLOWED = {"pydantic", "pydantic_settings", "yaml", "schemas", "processors"}
"""Typed models and their configuration: the only third-party roots the pure core may name."""
NETWORK_ROOTS = {
    "confluent_kafka",
    "aiokafka",
    "kafka",
    "faust",
    "mode",
    "rocksdict",
    "httpx",
    "fastapi",
    "starlette",
    "uvicorn",
    "aiohttp",
    "requests",
    "connectors",
    "streams",
    "infra",
}
"""What the pure core must not load even indirectly: Kafka, Faust, HTTP, the edges."""

FORBIDDEN: dict[str, set[str]] = {
    "schemas": OURS - {"schemas"},
    "streams": {"processors", "connectors"},
    "processors": {"connectors"},
}
"""Package -> packages of ours it must not import."""

KNOWN_VIOLATIONS: set[tuple[str, str]] = set()
"""Upward imports that exist today and have an issue to remove them (none left).

The test fails when one of these disappears, so the list can only shrink.
"""


def modules_of(package: str) -> list[str]:
    root = REPO / package
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for path in root.rglob("*.py")
        if ".state" not in path.parts
    )


def imported_roots(module: str) -> set[str]:
    """Top-level names of every absolute import in ``module`` (relative ones stay inside)."""
    return roots_in(REPO / Path(*module.split(".")).with_suffix(".py"))


def roots_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def layer_violations() -> set[tuple[str, str]]:
    return {
        (module, root)
        for package, forbidden in FORBIDDEN.items()
        for module in modules_of(package)
        for root in imported_roots(module) & forbidden
    }


def test_no_package_imports_a_layer_above_it() -> None:
    found = layer_violations()
    assert found - KNOWN_VIOLATIONS == set(), "imports against the layering of DESIGN.md"
    assert KNOWN_VIOLATIONS - found == set(), "fixed: remove it from KNOWN_VIOLATIONS"


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_names_only_stdlib_pydantic_yaml_and_schemas(module: str) -> None:
    foreign = {
        root
        for root in imported_roots(module)
        if root not in PURE_ALLOWED and root not in sys.stdlib_module_names
    }
    assert not foreign, f"{module} imports {sorted(foreign)}"


def test_importing_the_pure_core_loads_no_kafka_faust_http_or_edges() -> None:
    probe = (
        "import importlib, json, sys\n"
        f"for name in {PURE_CORE!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "processors" in loaded and "schemas" in loaded  # the probe really imported them
    assert loaded & NETWORK_ROOTS == set()


def test_the_checks_see_imports_inside_functions_and_skip_relative_ones(tmp_path: Path) -> None:
    """A lazy import is an import: the static reader must not miss it."""
    module = tmp_path / "lazy.py"
    module.write_text(
        "from . import sibling\n"
        "def f():\n    from connectors import auth\n    import faust.app, json\n"
    )
    assert roots_in(module) == {"connectors", "faust", "json"}
