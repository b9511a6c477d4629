"""Shared pytest hooks: report which Kafka broker the suite ran against; find leaks where made."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

BROKER_INFO = pytest.StashKey[str]()


BROKER_TIERS = ("contract", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of the broker tiers in one pytest-xdist group: one process, in order.

    With ``-n 2 --dist loadgroup`` (``make test``) the unit tier runs on the
    other core meanwhile; the broker tiers keep the one session broker and the
    sequential timing their waits were written for.
    """
    for item in items:
        if item.path.parent.name in BROKER_TIERS:
            item.add_marker(pytest.mark.xdist_group("broker"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the broker's version (read from its own log) at the end of the run."""
    info = terminalreporter.config.stash.get(BROKER_INFO, None)
    if info:
        terminalreporter.write_sep("-", "kafka broker")
        terminalreporter.write_line(info)


@pytest.fixture(autouse=True)
def _collect_garbage_after_integration_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """A leaked socket or subprocess fails the test that leaked it, not a later one.

    Warnings are errors, and so is the ``ResourceWarning`` of a client left
    open; an object in a reference cycle is only freed when the collector
    runs, which may be during any later test. Collecting after each test
    that talks to real processes pins the failure to its cause.
    """
    yield
    if request.node.get_closest_marker("integration") is not None:
        gc.collect()
