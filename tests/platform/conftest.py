"""The platform tier: tests of whole ``safepassage run`` platforms, each with its own broker.

They need no broker of the suite's (``make test`` runs this tier beside the
broker tiers, after the unit tier). One plain run serves the tier: the docs'
examples run against it first (``test_docs_run.py``), ``test_run.py`` stops it
last; the demo (``test_demo.py``) starts its own with ``--demo``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.platform.runs import Run, end_run, start_run

READY_TIMEOUT_S = 240.0


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    handle = start_run(tmp_path_factory.mktemp("run-state"), ready_timeout_s=READY_TIMEOUT_S)
    try:
        yield handle
    finally:
        end_run(handle)
