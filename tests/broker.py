"""The session broker's fixtures, one instance for every tier that asks for it.

Registered by the root conftest (``pytest_plugins``): the contract and the
integration tiers share this one definition, so a session (or the one
pytest-xdist process that runs both tiers) starts one broker and stops it
once. Two copies of a session fixture in two conftests are two fixtures to
pytest, each with its own lifetime: one could wipe the state folder of the
broker the other was starting.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator

import pytest

from infra import BrokerSettings, Deployment, single_node
from streams.settings import KafkaSettings
from tests.conftest import BROKER_INFO
from tests.integration.conftest import REPO, SESSION_PORT, create_topic

__all__ = ["bootstrap", "kafka_deployment", "kafka_settings", "make_topic"]


@pytest.fixture(scope="session")
def kafka_deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The session's single-node broker (started if none runs, stopped if we started it)."""
    port = int(os.environ.get("SAFEPASSAGE_TEST_KAFKA_PORT", str(SESSION_PORT)))
    # One state folder per port: suites run side by side must not share (or wipe) a broker.
    folder = "test-kafka" if port == SESSION_PORT else f"test-kafka-{port}"
    settings = BrokerSettings(
        state_dir=REPO / ".state" / folder,
        port=port,
        controller_port=port + 1,
        security="plaintext",  # the fast tier: an explicit choice (the default is sasl_ssl)
    )
    deployment = single_node(settings)
    node = deployment.nodes[0]
    started = not node.is_running()
    if started:
        shutil.rmtree(deployment.directory, ignore_errors=True)  # a clean cluster each run
    deployment.start()
    how = "started by the suite" if started else "already running, reused"
    request.config.stash[BROKER_INFO] = (
        f"Apache Kafka {node.kafka_version()} (KRaft, single node) at {node.bootstrap}, {how}"
    )
    yield deployment
    if started and os.environ.get("SAFEPASSAGE_TEST_KEEP_BROKER") != "1":
        deployment.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka_deployment: Deployment) -> str:
    """bootstrap.servers of the session broker."""
    return kafka_deployment.bootstrap


@pytest.fixture
def kafka_settings(bootstrap: str) -> KafkaSettings:
    """Client settings for the session broker, with a namespace of the test's own."""
    return KafkaSettings(
        bootstrap_servers=bootstrap, topic_namespace=f"test-{uuid.uuid4().hex[:12]}"
    )


@pytest.fixture
def make_topic(bootstrap: str) -> Callable[..., str]:
    """Create a uniquely named topic for this test and return its name."""

    def create(partitions: int = 6, replication: int = 1, **config: str) -> str:
        return create_topic(
            bootstrap, f"test-{uuid.uuid4().hex}", partitions, replication, **config
        )

    return create
