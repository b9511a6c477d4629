"""Three-node KRaft cluster: replication survives a node going away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.cli.kafka import principal_settings
from infra import Deployment, cluster
from streams.clients import admin_client, producer_config
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


@pytest.mark.long
def test_a_secured_cluster_replicates_over_tls_and_refuses_what_is_not_granted(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The three nodes as `make run` secures one: SCRAM over TLS, mutual TLS between nodes."""
    settings = dedicated_settings(
        tmp_path_factory.mktemp("secured-cluster"),
        cluster_base_port=free_base(),
        heap="320m",
        security="sasl_ssl",
    )
    deployment = cluster(settings)
    deployment.start()
    try:
        admin = principal_settings(deployment, "admin", KafkaSettings())
        topic = "replicated-secured"
        client = admin_client(admin)  # kept: a dropped client cancels its futures
        futures = client.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])
        futures[topic].result(60)
        produce_numbered(admin, topic)
        assert deployment.stop([2]) == [2]
        produce_numbered(admin, topic)  # acks=all met by the two nodes left, over TLS
        deployment.start([2])
        assert len(consume_all(admin, topic, 2 * KEYS * PER_KEY)) == 2 * KEYS * PER_KEY

        # The router's grants are on the platform's topics only; a stranger gets nowhere.
        router = principal_settings(deployment, "router", KafkaSettings())
        errors: list[KafkaError | None] = []
        producer = Producer(producer_config(router, **{"message.timeout.ms": 10000}))
        producer.produce(topic, b"v", on_delivery=lambda e, _m: errors.append(e))
        producer.flush(20)
        assert errors and errors[0] is not None and "AUTHORIZATION" in errors[0].name()
        stranger = AdminClient(
            {"bootstrap.servers": deployment.bootstrap, "socket.timeout.ms": 3000}
        )
        with pytest.raises(KafkaException):
            stranger.list_topics(timeout=5)
    finally:
        deployment.stop()
