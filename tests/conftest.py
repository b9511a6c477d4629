"""Shared pytest hooks: report which Kafka broker the suite ran against; find leaks where made."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

BROKER_INFO = pytest.StashKey[str]()

pytest_plugins = ["tests.broker"]  # the session broker's fixtures, shared by every tier


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
