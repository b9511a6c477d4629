"""Contract tests: each case runs against a test double and against the adapter it imitates.

The ``backend`` fixture is parametrised: ``fake`` builds the double of
tests/doubles.py and starts nothing; ``kafka`` builds the real adapter on
the session broker and is marked ``integration``. The broker fixtures are
the session's one set (:mod:`tests.broker`, registered by the root conftest).
"""

from __future__ import annotations

import pytest

__all__ = ["backend"]

BACKENDS = [
    pytest.param("fake", id="fake"),
    pytest.param("kafka", id="kafka", marks=pytest.mark.integration),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``fake`` (the double) or ``kafka`` (the real adapter on the session broker)."""
    return str(request.param)
