"""Shared pytest hooks: report which Kafka broker the suite ran against."""

from __future__ import annotations

import pytest

BROKER_INFO = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the broker's version (read from its own log) at the end of the run."""
    info = terminalreporter.config.stash.get(BROKER_INFO, None)
    if info:
        terminalreporter.write_sep("-", "kafka broker")
        terminalreporter.write_line(info)
