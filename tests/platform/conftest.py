"""The platform tier: tests of whole ``safepassage run`` platforms, each with its own broker.

They need no broker of the suite's (``make test`` runs this tier beside the
broker tiers, after the unit tier). One run serves the tier: the docs'
examples run against it first (``test_docs_run.py``), ``test_run.py`` stops it
last.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.platform.runs import Run, started_run


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with started_run(tmp_path_factory.mktemp("run-state")) as handle:
        yield handle
