"""Contract tests: each case runs against a test double and against the adapter it imitates.

The ``backend`` fixture is parametrised: ``fake`` builds the double of
tests/doubles.py and starts nothing; ``kafka`` builds the real adapter on
the session broker and is marked ``integration``. The broker fixtures of
tests/integration are re-exported here (a conftest below the root may not
declare ``pytest_plugins``); a session running both folders reuses the
one broker, and only the fixture that started it stops it.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import bootstrap, kafka_deployment, kafka_settings, make_topic

__all__ = ["backend", "bootstrap", "kafka_deployment", "kafka_settings", "make_topic"]

BACKENDS = [
    pytest.param("fake", id="fake"),
    pytest.param("kafka", id="kafka", marks=pytest.mark.integration),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``fake`` (the double) or ``kafka`` (the real adapter on the session broker)."""
    return str(request.param)
