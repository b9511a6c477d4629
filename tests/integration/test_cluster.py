"""Three-node KRaft cluster: replication survives a node going away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra import Deployment, cluster
from streams.settings import KafkaSettings
from tests.integration.conftest import create_topic, dedicated_settings, free_port
from tests.integration.test_produce_consume import KEYS, PER_KEY, consume_all, produce_numbered

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def free_base() -> int:
    """A base port with the cluster's ports free: clients from it, controllers from +100,
    the inter-broker listeners of a secured cluster from +200 (see ``infra.broker``)."""
    return free_port(span=203)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    settings = dedicated_settings(
        tmp_path_factory.mktemp("cluster"), cluster_base_port=free_base(), heap="320m"
    )
    deployment = cluster(settings)
    deployment.start()
    yield deployment
    deployment.stop()


def test_acks_all_writes_go_on_with_one_node_down_and_nothing_is_lost(
    three_nodes: Deployment,
) -> None:
    settings = KafkaSettings(bootstrap_servers=three_nodes.bootstrap)
    topic = "replicated"
    create_topic(three_nodes.bootstrap, topic, 3, 3, **{"min.insync.replicas": "2"})
    produce_numbered(settings, topic)

    assert three_nodes.stop([2]) == [2]
    assert [s.pid is None for s in three_nodes.status()] == [False, True, False]
    produce_numbered(settings, topic)  # acks=all still met by 2 in-sync replicas

    three_nodes.kill(3)  # a crash this time
    three_nodes.start([2, 3])

    records = consume_all(settings, topic, 2 * KEYS * PER_KEY)
    assert len(records) == 2 * KEYS * PER_KEY
